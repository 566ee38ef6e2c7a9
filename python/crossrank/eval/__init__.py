"""Evaluation: trec_eval-compatible metrics, BEIR datasets and TREC run/qrels files."""
