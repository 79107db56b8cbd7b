"""From a request to an answer. Pure (no torch at import): ``tasks`` (the text of each task),
``prompting`` (chat messages for a family), ``parsing`` (answers to regions in chip pixels),
``engine`` (the ``Engine`` interface). Runtimes: ``loading`` (device and precision policy, memory
check), ``local`` (transformers in this process), ``remote`` (an OpenAI-compatible server),
``earthgptx/`` (the native EarthGPT-X architecture, processor, training and converters).

A new model family is an entry in ``core.families`` (its coordinate convention and answer style), a
parser style here if its answers are new, and a tiny builder in ``testing.tiny_model``; a new engine is
one module here implementing ``engine.Engine``. Imports ``core``; never ``geo``, ``jobs``, ``commands``.
"""
