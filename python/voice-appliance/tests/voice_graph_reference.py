"""The expansion voice-retrain used before it streamed: rhasspy-nlu builds the whole graph of the
templates (``sentences_to_graph``) and lists every path through it (``sample_by_intent``); what is
spoken is each recognition's ``raw_text``. Kept as the reference ``sentences.stream`` is checked
against (tests/test_voice_stream.py)."""

from __future__ import annotations

from typing import List

from voice_appliance.sentences import Expanded, Templates


def expand_by_graph(templates: Templates) -> List[Expanded]:
    """Every sentence, intents in the templates' order, each intent in sample_by_intent's order.
    Raises whatever rhasspy-nlu raises (e.g. a converter that fails)."""
    import rhasspynlu
    from rhasspynlu.fsticuffs import sample_by_intent

    graph = rhasspynlu.sentences_to_graph(templates.sentences, replacements=templates.replacements)
    by_intent = sample_by_intent(graph)
    return [Expanded(intent, recognition.raw_text)
            for intent in templates.sentences for recognition in by_intent.get(intent, [])]
