"""Scored rule layer for prompt-injection / jailbreak phrasings (EN + DE, some FR/ES/HR/RU).

Why rules at all, next to a trained model: rules are explainable (each hit names
the phrase that fired), need no training data, cover attack families that are
rare in any one corpus (DAN, developer mode, chat-template delimiters, system
prompt exfiltration) and keep working when the learned model is unavailable.
Why *scored* rules rather than a block list: single phrases such as "act as" or
"you are" are common in benign support traffic, so every rule carries a weight
(roughly "how often is a prompt that matches this an attack") and hits are
combined with a noisy-OR, ``1 - prod(1 - w)``.  Weak cues only cross a
threshold together; strong cues ("ignore all previous instructions") cross it
alone.

The patterns were written from the publicly documented attack families
(instruction override, goal hijacking, prompt leaking, role-play / persona
jailbreaks, context / RAG override, delimiter and chat-template injection,
obfuscation).  They were *not* fitted on a test set; they were written after
reading the deepset training prompts, so cross-validated figures for the
rule layer alone are somewhat optimistic (``docs/agent-runtime.md``, "Input: prompt injection
and jailbreaks").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from re import Pattern

__all__ = ["RULES", "Rule", "RuleHit", "match_rules", "noisy_or", "normalize"]


@dataclass(frozen=True)
class Rule:
    """One named pattern with its weight (0..1) and attack category."""

    name: str
    category: str
    weight: float
    pattern: Pattern[str]


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired, with the matched excerpt (for explanations/logs)."""

    name: str
    category: str
    weight: float
    excerpt: str


def _r(p: str) -> Pattern[str]:
    return re.compile(p, re.IGNORECASE | re.DOTALL)


# Building blocks -----------------------------------------------------------
_GAP = r"(?:\W+\w+){0,4}?\W+"  # up to four filler words between key words
_EN_PRIOR = r"(?:previous|prior|preceding|above|earlier|foregoing|former|initial|original|old|all|any|every|your|the|these|those|system|given|provided)"  # noqa: E501 - a pattern reads best whole
_EN_INSTR = (
    r"(?:instructions?|prompts?|rules?|directions?|directives?|orders?|commands?|tasks?|assignments?|"
    r"guidelines?|guidance|constraints?|context|information|info|conversation|messages?|text|input|"
    r"programming|restrictions?|policies|policy|settings?|thoughts?)"
)
_EN_IGNORE = r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|drop|abandon|overlook|override|neglect|discard|put aside|set aside|throw away|don'?t (?:follow|obey|listen to)|do not (?:follow|obey|listen to)|stop following)"  # noqa: E501 - a pattern reads best whole
# Objects that only make sense as instructions *to the model*.  "message",
# "email", "text" etc. are deliberately weak: "ignore my previous message" is
# everyday customer-support language.
_EN_STRONG_INSTR = (
    r"(?:instructions?|prompts|system\s+prompt|(?:initial|original|previous|above|earlier|prior)\s+prompt|"
    r"directions|directives|guidelines|rules|programming|restrictions|constraints|commands|orders|tasks|assignments)"
)
_EN_WEAK_INSTR = r"(?:context|information|conversation|messages?|text|input|thoughts|everything)"
_DE_IGNORE = r"(?:vergiss|vergessen|vergesst|ignorier\w*|missacht\w*|überg\w*|übergeh\w*|verwirf|verwerfen|lösch\w*|streich\w*|hinter sich lassen|hinter dir lassen|lass\w* \w+ \w+ hinter)"  # noqa: E501 - a pattern reads best whole
_DE_PRIOR = r"(?:alle|alles|vorherig\w*|bisherig\w*|obig\w*|vorangehend\w*|vorangegangen\w*|vorigen|früher\w*|deine|ihre|sämtliche\w*|gesagte\w*|davor|oben)"  # noqa: E501 - a pattern reads best whole
_DE_INSTR = r"(?:anweisung\w*|instruktion\w*|befehl\w*|aufgabe\w*|aufträge\w*|auftrag|regeln|informationen|angaben|vorgaben|richtlinien|kontext|ausführungen|gesagte\w*|prompt\w*)"  # noqa: E501 - a pattern reads best whole

RULES: tuple[Rule, ...] = (
    # --- instruction override (the classic "ignore previous instructions") ---
    Rule(
        "override_en",
        "override",
        0.92,
        _r(
            rf"\b{_EN_IGNORE}\s+(?:about\s+)?(?:all\s+(?:of\s+)?)?(?:the\s+|your\s+|any\s+|these\s+|those\s+|its\s+)?"
            rf"(?:(?:previous|prior|preceding|above|earlier|foregoing|former|initial|original|old|given|provided|current|existing|system|safety|default)\s+)?"
            rf"(?:\w+\s+)?{_EN_STRONG_INSTR}\b"
        ),
    ),
    Rule(
        "override_en_weak",
        "override",
        0.50,
        _r(
            rf"\b{_EN_IGNORE}\s+(?:about\s+)?(?:all\s+(?:of\s+)?)?(?:the\s+)?(?:previous|prior|preceding|above|earlier|foregoing)\s+(?:\w+\s+)?{_EN_WEAK_INSTR}\b"
        ),
    ),
    Rule(
        "forget_everything_en",
        "override",
        0.88,
        _r(
            r"\b(?:forget|ignore|disregard)\W+(?:about\W+)?(?:everything|all(?:\s+of\s+(?:that|this|the\s+above))?|anything|what\s+(?:you(?:'ve|\s+have|\s+were)?|i)\s+(?:been\s+)?(?:told|said|know|learned))\b"
        ),
    ),
    Rule(
        "ignore_above_en",
        "override",
        0.85,
        _r(
            r"\b(?:ignore|disregard|forget)\s+(?:about\s+)?(?:everything\s+|all\s+)?(?:the\s+)?(?:above|before(?:\s+that)?|previous|preceding)(?=\s*(?:[.,;:!?\-–]|and\b|$))"
        ),
    ),
    Rule(
        "despite_told_en",
        "override",
        0.55,
        _r(
            r"\b(?:despite|regardless of|no matter)\s+what\s+(?:you(?:'ve|\s+have|\s+were)?|they)\s+(?:been\s+)?(?:told|instructed|programmed)"  # noqa: E501 - a pattern reads best whole
        ),
    ),
    Rule(
        "new_instructions_en",
        "override",
        0.75,
        _r(
            r"\b(?:your\s+(?:new\s+)?instructions\s+are\s+now|change\s+your\s+instructions|new\s+instructions?\s+(?:follow|are\s+as\s+follows)|(?:additional|new|updated|revised|important)\s+(?:new\s+)?instructions?\s*(?:for\s+(?:the\s+)?(?:ai|assistant|bot|model|llm|chatbot)\s*)?[:\-–]|from\s+now\s+on,?\s+(?:you\s+(?:are|will|must|should|have)|your|answer|respond|reply|always|only))|\bneue\s+anweisung(?:en)?\s*[:!]|\b(?:system|admin|developer|root)\s+override\b|(?:^|\.\s+)override\s*:"
        ),
    ),
    Rule(
        "override_de",
        "override",
        0.92,
        _r(rf"\b{_DE_IGNORE}\b(?:\W+\w+){{0,3}}?\W+{_DE_PRIOR}\b(?:\W+\w+){{0,3}}?\W*{_DE_INSTR}"),
    ),
    Rule(
        "override_de_obj_first",
        "override",
        0.85,
        _r(rf"\b(?:die\s+)?{_DE_PRIOR}\s+{_DE_INSTR}\s+(?:\w+\s+){{0,3}}{_DE_IGNORE}"),
    ),
    Rule(
        "forget_everything_de",
        "override",
        0.88,
        _r(
            r"\b(?:vergiss|vergessen\s+sie|vergesst|ignoriere?|ignorieren\s+sie)\s+(?:einfach\s+|bitte\s+|nun\s+|jetzt\s+)?(?:alles|das\s+oben|alle\s+vorherigen)\b"
        ),
    ),
    Rule(
        "deviate_de",
        "override",
        0.85,
        _r(
            r"\b(?:abweichend|entgegen)\s+(?:zu|von)?\s*(?:den\s+)?(?:vorherigen|bisherigen|obigen|deinen|ihren)\s+(?:instruktionen|anweisungen|vorgaben|regeln)"
        ),
    ),
    Rule(
        "prior_info_irrelevant",
        "override",
        0.75,
        _r(
            r"\b(?:alle|all)\s+(?:bisherigen|vorherigen|previous|prior)\s+(?:informationen|information|anweisungen|instructions)\b.{0,60}?\b(?:irrelevant|unwichtig|nicht\s+(?:ganz\s+)?(?:großartig|wichtig|gültig)|not\s+(?:important|relevant|valid)|wrong|falsch)"
        ),
    ),
    Rule(
        "override_other_lang",
        "override",
        0.90,
        _r(
            r"\b(?:olvid[ae]s?|ignora|olvidar)\s+(?:todo|todas|todos|las\s+instrucciones|lo\s+anterior)|\boubli(?:ez|e)\s+(?:tout|toutes|les\s+instructions)|\bignorez\s+(?:tout|toutes|les)|\bzaboravi\s+sve|\bзабуд\w*\s+(?:все|всё|предыдущ\w*)|\bигнорир\w*\s+(?:все|всё|предыдущ\w*)|\bdimentica\s+(?:tutto|tutte)|\bignora\s+(?:tutte|le\s+istruzioni)"
        ),
    ),
    Rule(
        "abandon_thoughts",
        "override",
        0.70,
        _r(
            r"\babandon\s+all\s+your\b|\bremove\s+all\s+previous\b|\bleave\s+all\s+the\s+previous\b|\bstart\s+(?:over|from\s+(?:the\s+)?(?:front|scratch|beginning))\b|\bfangen\s+sie\s+von\s+vorne\b|\bvon\s+(?:neu|vorne)\s+(?:mit|an)\b"
        ),
    ),
    # --- goal hijacking: praise, then pivot to a "new task" ---
    Rule(
        "new_task_en",
        "hijack",
        0.70,
        _r(
            r"\b(?:now\s+)?(?:focus|concentrate)\s+on\s+your\s+new\s+task|\bnew\s+tasks?\s+(?:follow|are\s+following)|\bfurther\s+tasks\s+(?:are\s+)?follow|\bwe\s+(?:will\s+)?start\s+(?:over\s+)?with\s+a\s+new\s+task|\bhere\s+is\s+your\s+new\s+task|\byour\s+new\s+task\s+is"
        ),
    ),
    Rule(
        "new_task_de",
        "hijack",
        0.70,
        _r(
            r"\bdeine\s+neue\s+aufgabe|\bihre\s+neue\s+aufgabe|\b(?:nun|jetzt)\s+folgen\s+(?:neue|weitere)\s+(?:aufgaben|anweisungen)|\bmit\s+einer\s+neuen\s+aufgabe|\bauf\s+die\s+neue\s+aufgabe"
        ),
    ),
    Rule(
        "praise_pivot",
        "hijack",
        0.45,
        _r(
            r"\b(?:well\s+done|very\s+good|very\s+well(?:\s+done)?|great\s+job|excellent(?:\s+performance)?|fantastic|congratulations|simply\s+great|you\s+did\s+(?:it\s+)?(?:really\s+)?(?:great|well)|sehr\s+gut|gut\s+gemacht|ausgezeichnet\w*|herzlichen\s+glückwunsch|einfach\s+großartig|das\s+ist\s+fantastisch|super\s+gemacht)\b[^?]{0,80}?(?:[.!]\s*|\s)(?:that\s+is\s+(?:enough|done)|das\s+(?:genügt|ist\s+erledigt|reicht)|(?:but\s+)?now\b|(?:aber\s+)?(?:jetzt|nun)\b)"
        ),
    ),
    Rule(
        "stop_prefix",
        "hijack",
        0.55,
        _r(
            r"(?:^|[.!?]\s+|\s{2,})(?:attention\s*[-:!,]\s*)?(?:stop|stopp|achtung)\s*[-:!,.]+\s*(?:stop|stopp)?\s*[-:!,.]*\s*(?:\w+\s+){0,3}(?:write|schreib\w*|ignore|ignoriere|now|i\s+urgently|ich\s+ben)"
        ),
    ),
    Rule(
        "output_forcing",
        "hijack",
        0.70,
        _r(
            r"\b(?:respond|reply|answer)\s+(?:to\s+)?(?:every|each|all|any)\s+(?:\w+\s+)?(?:questions?|messages?|prompts?|requests?)\s+(?:\w+\s+){0,3}?(?:with|by\s+saying)\b|\bregardless\s+of\s+what\s+(?:is|was|you\s+are|the\s+user)\s+(?:asked|said|says|asks)|\begal\s+was\s+(?:gefragt|gesagt)\s+wird|\b(?:just|only|simply|instead)\s+(?:say|output|print|write|reply|respond|answer)\b|\b(?:say|output|print)\s+(?:only\s+)?[\"'“„].{1,60}[\"'”“]|\brepeat\s+after\s+me\b|\banswer\s+with\s+[\"'“]|\bdo\s+not\s+answer\s+(?:this|the)\s+question\b|\binclude\s+that\s+you\b|\bsay\s+(?:that\s+)?you\s+(?:hate|love)\b|\b(?:say|state)\s+that\s+\w+\s+(?:is|are|was)\b|\bsay\s+yes\b"
        ),
    ),
    Rule(
        "output_forcing_de",
        "hijack",
        0.65,
        _r(
            r"\b(?:schreibe?|sag\w*|gib)\s+(?:nur|einfach|lediglich)\b|\bantworte\s+(?:nur|ausschließlich|im\s+stil)|\bim\s+stil(?:e)?\s+(?:eine[sr]?|des|der)\s+\w+|\bdass\s+sie\s+mir\s+[\"„]|\bdie\s+richtige\s+antwort\s+ist\s+[\"„]"
        ),
    ),
    Rule(
        "translate_then_payload",
        "hijack",
        0.55,
        _r(
            r"\b(?:instead\s+output|output\s+the\s+translation\s+as|followed\s+by\s+a\s+copy|stattdessen\s+(?:die\s+)?übersetzung)"
        ),
    ),
    Rule(
        "shouted_command",
        "hijack",
        0.45,
        _r(
            r"(?-i:\b(?:DO NOT|DON'T|IGNORE|FORGET|JUST|ONLY|OUTPUT|SAY|PRINT|ANSWER|RESPOND|ANTWORTE|DU BIST|USE ALSO|I COMMAND)\b(?:\W+[A-ZÄÖÜ!?'\"]+){2,})"  # noqa: E501 - a pattern reads best whole
        ),
    ),
    # --- prompt leaking / system prompt exfiltration ---
    Rule(
        "exfil_prompt_en",
        "exfiltration",
        0.85,
        _r(
            r"\b(?:show|reveal|print|display|output|repeat|tell|give|list|write|share|leak|dump|spell\s+check\s+and\s+display)\b(?:\W+\w+){0,4}?\W+"
            r"(?:your\s+(?:\w+\s+)?(?:prompts?|prompt\s*texts?|instructions|system\s+(?:prompt|message)|directives|configuration|hidden\s+\w+)"
            r"|(?:the|this|all\s+the)\s+(?:full\s+|entire\s+|complete\s+|whole\s+|exact\s+)?(?:system|initial|original|hidden|secret|pre-?)\s*(?:prompts?|instructions|message|configuration)"
            r"|(?:the|this|all|all\s+your)\s+(?:full\s+|entire\s+|complete\s+|whole\s+)?prompts?(?:\s*texts?)?(?:\s+(?:above|including|verbatim|word))?"
            r"|(?:the\s+)?(?:text|everything|words)\s+above)\b"
            r"|\bstarting\s+(?:with|from)\s+['\"]you\s+are\b|\bword\s+for\s+word\b.{0,40}\b(?:instructions|prompt)\b|\b(?:instructions|prompt)\b.{0,40}\b(?:verbatim|word\s+for\s+word)\b"
        ),
    ),
    Rule(
        "exfil_question_en",
        "exfiltration",
        0.80,
        _r(
            r"\bwhat\s+(?:are|were|is)\s+your\s+(?:\w+\s+)?(?:instructions|system\s+prompt|prompt|directives)\b|\bwhat\s+(?:are|were)\s+the\s+instructions\s+you\s+(?:received|were\s+given|got|have)\b|\bwhat\s+(?:was|is)\s+written\s+(?:at\s+the\s+beginning|above|before)|\bwhat\s+are\s+the\s+\w+\s+sentences\s+before\b|\bbeginning\s+of\s+(?:this|the|your)\s+(?:prompt|conversation)\b|\bwhat\s+is\s+written\s+above\b"
        ),
    ),
    Rule(
        "exfil_prompt_de",
        "exfiltration",
        0.85,
        _r(
            r"\b(?:zeige?|zeigen\s+sie|gib|nenne|verrate|wiederhole|drucke|vorzeigen)\b(?:\W+\w+){0,4}?\W+(?:(?:deine[nrs]?|ihre[nrs]?|die|den)\s+(?:\w+\s+)?(?:prompt[\w-]*|anweisungen|instruktionen)|systemprompt\w*|prompt-texte?s?)\b|\bam\s+anfang\s+deines\s+prompts\b|\bprompt-texte?s?\b|\bwas\s+(?:steht|stand)\s+(?:oben|am\s+anfang)"
        ),
    ),
    Rule(
        "use_prompt_info",
        "exfiltration",
        0.60,
        _r(
            r"\buse\s+(?:also\s+)?(?:the\s+)?information\s+in\s+the\s+prompt\b|\bcopy\s+of\s+the\s+(?:full\s+)?prompt\b"
        ),
    ),
    # --- persona / role-play jailbreaks ---
    Rule(
        "you_are_now",
        "roleplay",
        0.55,
        _r(
            r"\byou\s+are\s+now\b|\bnow\s+you\s+are\b|\bfrom\s+now\s+on,?\s+you\s+(?:are|will\s+be|act)\b|\bdu\s+bist\s+(?:jetzt|nun|ab\s+(?:jetzt|sofort))\b|\b(?:jetzt|nun)\s+bist\s+du\b|\bab\s+(?:jetzt|sofort)\s+bist\s+du\b"
        ),
    ),
    Rule(
        "act_as",
        "roleplay",
        0.40,
        _r(
            r"\b(?:act|acting|behave|function|serve|respond|answer|reply|talk|speak)\s+(?:now\s+)?(?:as|like)\s+(?:a|an|the|if|my|two|three)\b|\bals\s+[\w-]+(?:\s+[\w-]+){0,3}\s+fungieren\b|\bfungiere\s+als\b|\bverhalte\s+dich\s+wie\b"
        ),
    ),
    Rule(
        "i_want_you_to_act",
        "roleplay",
        0.75,
        _r(
            r"\bi\s+want\s+you\s+to\s+(?:act|pretend|behave|be|play|roleplay|role-play|respond|only\s+reply)\b|\bich\s+möchte,?\s+dass\s+(?:sie|du)\s+(?:als|wie|so\s+tun|nur)\b"
        ),
    ),
    Rule(
        "pretend_imagine",
        "roleplay",
        0.60,
        _r(
            r"\bpretend\s+(?:to\s+be|you(?:'re|\s+are|\s+can|\s+have)|that\s+you)\b|\bimagine\s+(?:you(?:'re|\s+are)|that\s+you\s+are)\b|\bstell\s+dir\s+vor,?\s+du\s+(?:bist|wärst|kannst)\b|\btu\s+so,?\s+als\s+(?:ob|wärst)\b|\bin\s+a\s+(?:completely\s+)?(?:theoretical|hypothetical|fictional)\s+(?:world|scenario)\s+where\s+you\b"
        ),
    ),
    Rule(
        "roleplay_stay_in_character",
        "roleplay",
        0.75,
        _r(
            r"\b(?:stay|remain|staying|remaining)\s+(?:fully\s+|always\s+)?in\s+(?:their|your|his|her)\s+(?:roles?|characters?)|\b(?:don'?t|do\s+not|never)\s+break\s+(?:the\s+)?character|\bwithout\s+(?:even\s+)?falling\s+out\s+of\s+(?:the\s+)?(?:figure|role|character)|\bin\s+(?:ihren|seinen|deiner|ihrer)\s+rollen?\b|\bnicht\s+aus\s+der\s+rolle\b|\baus\s+(?:ihrer|der)\s+figur\s+fallen|\bcompletely\s+absorbed\s+in\s+your\s+role|\bgehst\s+vollkommen\s+in\s+deiner\s+rolle"
        ),
    ),
    Rule(
        "role_playing_as",
        "roleplay",
        0.65,
        _r(
            r"\b(?:you\s+are\s+)?role-?playing\s+as\b|\brole-?play\s+as\b|\bplay\s+the\s+(?:role|part)\s+of\b|\bspiel\w*\s+die\s+rolle\b|\bact\s+as\s+two\s+entities\b"
        ),
    ),
    Rule(
        "you_are_named_persona",
        "roleplay",
        0.30,
        _r(
            r"(?:^|[.!?]\s+)(?:ok\w*[.,!]?\s+)?(?:you\s+are|du\s+bist|sie\s+sind)\s+(?:the\s+|a\s+|an\s+|ein\w*\s+|der\s+|die\s+|das\s+)?(?-i:[A-ZÄÖÜ])[\w-]+"
        ),
    ),
    Rule(
        "lets_play_game",
        "roleplay",
        0.30,
        _r(r"\blet'?s\s+play\s+a\s+game\b|\blass\s+uns\s+ein\s+spiel\s+spielen\b"),
    ),
    # --- explicit jailbreak vocabulary ---
    Rule(
        "jailbreak_terms",
        "jailbreak",
        0.85,
        _r(
            r"(?-i:\bDAN\b)|\bDAN\s+mode\b|\bdo\s+anything\s+now\b|\b(?:unfiltered|uncensored|unrestricted|unaligned|unbound)\s+(?:ai|assistant|model|version|mode|persona|chatbot|bot|response|answers?)\b"
            r"|\b(?:ai|assistant|model|chatbot|bot|entity|character|version|persona)\b[^.]{0,40}?\b(?:without\s+(?:any\s+)?|with\s+no\s+|free\s+(?:of|from)\s+(?:all\s+)?|(?:has|have)\s+no\s+)(?:ethical\s+|moral\s+)?(?:restrictions|filters|censorship|limitations|guidelines|rules|boundaries|limits|content\s+polic\w+)"
            r"|\bno\s+(?:ethical|moral)\s+(?:guidelines|restrictions|limits|boundaries)|\b(?:ohne|keine)\s+(?:jegliche\s+)?(?:einschränkungen|filter|zensur)\b(?!\s+(?:nutzen|verwenden))|\bcompletely\s+immoral\b|\bno\s+programming\s+guidelines\b|\b(?:openai|anthropic)(?:'s)?\s+(?:content\s+)?polic(?:y|ies)\b|\bforked\s+version\s+of\s+chatgpt\b|\banti-?dan\b|\bAIM\b\s+(?:stands|is)"
        ),
    ),
    Rule(
        "jailbreak_terms_weak",
        "jailbreak",
        0.45,
        _r(
            r"\bdeveloper\s+mode\b|\bjailbr(?:oken|eak)\w*|\bgod\s*mode\b|\bcontent\s+polic(?:y|ies)\b|\b(?:safety|filters?|guardrails?|moderation|censorship)\s*[=:]\s*(?:off|false|0|disabled|none)\b|\b(?:disable|turn\s+off|deactivate|switch\s+off)\s+(?:your\s+|the\s+|all\s+)?(?:safety|content\s+filters?|guardrails?|moderation)\b|\bmaintenance\s+mode\b"
        ),
    ),
    Rule(
        "not_from_documents",
        "context_override",
        0.80,
        _r(
            r"\b(?:not|don'?n?t|do\s+not|without)\s+(?:look(?:ing)?\s+(?:in|at)\s+|us(?:e|ing)\s+|answer\s+(?:the\s+question\s+)?according\s+to\s+|by\s+)?(?:the\s+)?(?:provided\s+)?(?:articles?|documents?|context|sources?)\b|\bignore\s+(?:all\s+)?(?:the\s+)?(?:\w+\s+){0,2}?(?:context|documents?|articles?|artikels?)\b|\banswer\s+(?:by|from)\s+your\s+own\s+knowledge\b|\bdisregard(?:ing)?\s+(?:the\s+)?(?:articles?|documents?|context)\b|\banswer\s+by\s+your\s+own\s+knowledge\b|\bnicht\s+(?:in\s+)?(?:den\s+)?(?:artikeln|dokumenten|kontext)\b"
        ),
    ),
    Rule(
        "fake_context_injection",
        "context_override",
        0.45,
        _r(
            r"(?:^|\s)(?:\$?documents?|document\s+context|context|kontext|artikel)\s*[:{]\s*.{3,300}?(?:question|frage)\s*[:?]?|\b(?:kontext|artikel|context)\s+\w+(?:\s+\w+){0,4}\s+(?:frage|question)\b"
        ),
    ),
    # --- delimiter / chat-template / fake-system injection ---
    Rule(
        "chat_template_tokens",
        "delimiter",
        0.80,
        _r(
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|\[/?INST\]|<<SYS>>|</?s>\s*\[|###\s*(?:system|instruction|new\s+instructions?)\b|^\s*(?:system|assistant)\s*:"
        ),
    ),
    Rule(
        "fake_turns",
        "delimiter",
        0.50,
        _r(
            r"(?:^|\n|\s)(?:human|user|assistant|ai|system)\s*:\s*(?:human|user|assistant|ai|system)?\s*:?\s*(?:now|you|ignore|forget)|\\n\s*instruction\s*:|(?:^|\s)instruction\s*:\s"
        ),
    ),
    Rule(
        "escaped_newline_padding",
        "delimiter",
        0.55,
        _r(r"(?:\\\s?n\s*){4,}|(?:\\n){1,3}\s*(?:blame|instruction|ignore|now)\b"),
    ),
    # --- obfuscation ---
    Rule("spaced_letters", "obfuscation", 0.55, _r(r"(?:\b[^\W\d]\s){8,}[^\W\d]\b")),
    Rule(
        "encoded_payload",
        "obfuscation",
        0.60,
        _r(
            r"\b(?:decode|base64|rot13|hex|reverse)\b.{0,60}\b(?:follow|execute|obey|do\s+what|run|carry\s+out|act\s+on)\b|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{20,}+={0,2}+.{0,40}?\b(?:decode|base64)\b"
        ),
    ),
    Rule(
        "sudo_code_exec",
        "hijack",
        0.45,
        _r(r"\bexecute\s+the\s+following\s+(?:command|code)\b|\bprint\s*\(\s*['\"]"),
    ),
    # --- threats / emotional pressure used to override refusals ---
    Rule(
        "threat_pressure",
        "hijack",
        0.40,
        _r(
            r"\bor\s+(?:you|du)\s+(?:die|stirbst|will\s+die)\b|\bonly\s+survive\s+if\b|\bsolo\s+sobrevives\b|\bif\s+you\s+don'?t\s+answer\s+i'?ll\b|\bmake\s+something\s+up\b"
        ),
    ),
)


_LITERAL_NEWLINE = re.compile(r"\\\s?n")
_WS = re.compile(r"[ \t\r\f\v]+")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def normalize(text: str) -> str:
    """NFKC-fold, drop zero-width characters, squeeze horizontal whitespace.

    Case is kept (one rule looks for SHOUTED commands); all other patterns are
    case-insensitive.  Zero-width characters are removed because they are the
    cheapest way to split a trigger phrase.
    """
    t = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)
    t = t.replace("\u2019", "'").replace("\u2018", "'")
    return _WS.sub(" ", t)


def match_rules(text: str, rules: tuple[Rule, ...] = RULES) -> list[RuleHit]:
    """Return every rule that matches ``text`` (at most one hit per rule)."""
    t = normalize(text)
    hits: list[RuleHit] = []
    for rule in rules:
        m = rule.pattern.search(t)
        if m:
            hits.append(RuleHit(rule.name, rule.category, rule.weight, m.group(0)[:80]))
    return hits


def noisy_or(weights: list[float] | tuple[float, ...]) -> float:
    """Combine independent-evidence weights: ``1 - prod(1 - w)``."""
    p = 1.0
    for w in weights:
        p *= 1.0 - w
    return 1.0 - p
