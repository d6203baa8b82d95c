"""The approver's use cases over its ports: admitting a draft (:mod:`.intake`) and deciding
on an approval. Plain functions; the entry points call them, the adapters implement the
ports (:mod:`.ports`) they take.
"""
