"""Command lines: argument parsing and printing only, the work is in ``jobs``, ``geo`` and ``models``.
``python -m model_backend locate|ask|find`` (``main``: one module per subcommand with ``add_parser``
and ``run``), ``python -m model_backend.eval`` (``eval``), ``python -m model_backend.commands.diagnostics``
(``diagnostics``). Nothing imports this package except the ``__main__`` modules.
"""
