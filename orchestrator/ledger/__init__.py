"""The on-disk record of every import, its states and transitions, in SQLite or PostgreSQL.

In the order a reader needs them: ``states.py`` (the state graph as data), ``transitions.py`` and
``reads.py`` (what a run changes and reads), ``views.py`` and ``reports.py`` (what an operator reads),
``store.py`` (the :class:`~.store.Ledger` other layers hold), ``factory.py`` (opening one by location),
``schema.py`` and ``migrations.py``, ``backend.py`` with ``sqlite.py`` and ``postgres.py``, ``session.py``
(locking, transactions, the group commit), ``runs.py``, ``lock.py`` and ``copy.py``."""
