"""The model card: what an ONNX model reads and returns, in a document that travels inside it.

This package sits below both ``sealing`` (``seal file --card`` checks and embeds cards) and
``inference`` (a loaded model is checked against its card), so neither imports the other
for it. It reads graphs with ``onnx`` and never starts onnxruntime.

- ``document``: the card (format 2; format 1 cards are converted when read)
- ``signature``: a graph's inputs and outputs (names, element types, shapes)
- ``check``: the card against the graph, every disagreement named in one error
- ``derive``: a card from the graph plus feature names
- ``embed``: the card in the model's metadata
- ``attach``: the card a model is sealed with (given, carried or derived)
"""
