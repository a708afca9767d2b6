"""Small pieces that both independent implementations (``reference`` and ``s2emu``) may use.

Only the error family, safe NIR loading and validation, graph walking and the
recording format live here. Neither simulator's semantics does.
"""
