# The commands people type. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen
DATA ?= ../shared/data/scifact
SPLIT ?= train
# Gateway replicas for `make up` (gateway-1 on 8001, gateway-N on 8010+N); empty: 1, or as many
# as the stack being recovered has.
GATEWAYS ?=

.PHONY: help install up down status token publish follow-audit ctl demo test test-unit test-integration test-e2e lint format typecheck eval bench-saga bench-retrieval bench-kb bench-answers bench-guardrails train-guardrails fault-test reliability dlq asyncapi clean bench-cache trace cost

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

install: $(UV) ## Install every package and dev tool from the lock file
	$(UV) sync --all-packages --frozen

up: install ## Run the platform locally under supervisord (GATEWAYS=N replicas), Prometheus on :9090; recovers a half-up stack
	$(RUN) devstack up $(if $(GATEWAYS),--gateways $(GATEWAYS))

down: ## Stop exactly what `make up` started
	$(RUN) devstack down

status: ## State, pid, uptime, restarts, memory and health of each program (fails if one is down)
	$(RUN) devstack status

token: ## Print a development token (default casey.customer; ARGS="--user ana --role support --level L2")
	@$(RUN) devstack token $(ARGS)

publish: ## Publish a question to `request` as an upstream system would (ARGS='"your question"')
	$(RUN) python docs/examples/publish_request.py $(or $(ARGS),"How many days do I have to return an item?")

follow-audit: ## Follow the `audit` topic as a compliance subscriber (ARGS="--limit 20")
	$(RUN) python docs/examples/follow_audit.py $(or $(ARGS),--limit 20)

ctl: ## supervisorctl on the local stack (ARGS="status", "restart retriever", "tail -f agent")
	$(RUN) supervisorctl -c .stack/supervisord.conf $(or $(ARGS),status)

demo: ## Send the demo questions through the running stack
	$(RUN) devstack demo

test: install ## All tests: unit, integration (real broker + PostgreSQL + index) and end to end, with coverage
	$(RUN) pytest --durations=15 --cov --cov-report=term

test-unit: install ## Unit tests only
	$(RUN) pytest -m unit

test-integration: install ## Integration tests only
	$(RUN) pytest -m integration

test-e2e: install ## End-to-end tests only
	$(RUN) pytest -m e2e

lint: install ## ruff format check, ruff lint and mypy --strict
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy shared/src services/*/src deploy/devstack/src evals/src

format: install ## Apply ruff formatting and fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

typecheck: install ## mypy --strict over the packages
	$(RUN) mypy shared/src services/*/src deploy/devstack/src evals/src

reliability: install ## Load, SIGKILLs, a database crash, poison and adversarial requests; every request ends, no wrong effect (~12 min)
	$(RUN) python -m evals.reliability $(ARGS)

dlq: install ## What sits on the dead-letter topics (ARGS="replay --ref topic:partition:offset" to replay)
	$(RUN) platform-dlq $(or $(ARGS),list)

fault-test: install ## SIGKILL the approver/executor 50+ times; every approved action has exactly one effect
	FAULT_TEST_MIN_KILLS=50 $(RUN) pytest services/approver/tests/test_fault_injection.py -q -s

# Another knowledge base and dataset for `make eval` (empty: deploy/knowledge-base and
# evals/dataset.jsonl); ARGS passes the rest (--update-baseline, --min-pass-rate, --tolerance, ...).
KB ?=
DATASET ?=

eval: install ## Eval case by case on a throw-away stack, gated on evals/baseline.json (KB=dir DATASET=file ARGS=--update-baseline)
	$(RUN) python -m evals.run $(if $(KB),--knowledge-base $(KB)) $(if $(DATASET),--dataset $(DATASET)) $(ARGS)

bench-saga: install ## Saga latency and throughput through the running stack vs in-process floor (ARGS=--repeat: cached)
	$(RUN) python -m evals.bench_saga $(ARGS)

bench-retrieval: install ## Retrieval quality and latency on a BEIR dataset (DATA=..., SPLIT=...)
	$(RUN) python -m evals.bench_retrieval --data $(DATA) --split $(SPLIT)

bench-answers: install ## Answer quality of the offline model on the knowledge base's eval questions
	$(RUN) python -m evals.bench_answers --semantic-weight 0 --semantic-weight 0.4 --min-relevance 0.40 --min-relevance 0.44 --min-relevance 0.48

bench-kb: install ## Retrieval, answers and refusal on an unseen KB (DATA=../shared/data/policyqa/dev.json; ARGS="--set chunking.paragraph_chars=150")
	$(RUN) python -m evals.bench_kb --data $(if $(filter %.json,$(DATA)),$(DATA),../shared/data/policyqa/dev.json) $(if $(SCIFACT),--scifact $(SCIFACT)) $(ARGS)

bench-guardrails: install ## Injection detector per set, document screen per doc type, PII per entity, latencies
	$(RUN) python -m evals.bench_guardrails $(GUARDRAIL_DATA) --pii ../shared/data/pii/presidio-synth-dev.json

GUARDRAIL_DATA = --prompts ../shared/data/prompt-injection/deepset-train.jsonl --prompts ../shared/data/prompt-injection/jailbreak-train.csv --bipia ../shared/data/prompt-injection/bipia-train --kb ../shared/data/policyqa/dev.json --kb ../shared/data/scifact/corpus.jsonl

train-guardrails: install ## Retrain the shipped injection and document-screen models from the shared data sets
	$(RUN) python -m evals.bench_guardrails --train $(GUARDRAIL_DATA)

bench-cache: install ## Caches off vs on: 2,000 Zipf-drawn requests, two principals, through an ephemeral stack (ARGS=)
	$(RUN) python -m evals.bench_cache $(ARGS)

trace: ## One request's saga as a timeline: step, service, duration, model, tokens, cost, cache (ID=request id)
	@test -n "$(ID)" || { echo "usage: make trace ID=<request id>"; exit 2; }
	@$(RUN) trace $(ID)

cost: ## Cost of requests from the audit log (ARGS="--by tenant|model|day --since 7d")
	@$(RUN) cost report $(ARGS)

asyncapi: install ## Write the AsyncAPI document of every topic to docs/asyncapi.json
	$(RUN) python -m shared.contracts.asyncapi > docs/asyncapi.json

clean: ## Remove caches and local state (stop the stack first)
	rm -rf .stack .pytest_cache .mypy_cache .ruff_cache
