"""Persistent store: studies and their versions, designs, runs with data versions,
analyses, design-space decisions, seed-train passage sheets with passage data versions,
equivalence tests, manufacturing lot sheets with lot data versions, and a hash-chained audit trail (21 CFR 11.10(e)).

>>> import tempfile
>>> from doe.store import Store
>>> store = Store.open(data_dir=tempfile.mkdtemp())  # SQLite file, created on first use
>>> store.verify_audit().ok
True
>>> store.close()

Default location: ``DATABASE_URL`` if set, else ``doe.sqlite`` in ``DOE_DATA_DIR``
(or ``~/.doe-workbench``). Opening upgrades the schema with Alembic; a database
from a newer version of the software, or a file that is not a workbench
database, is refused with a :class:`~doe.errors.DoeError`.
"""

from doe.cells import same_value, stored_cell
from doe.store._audit import AuditCheck, SignedHead, User
from doe.store._bundle import MAX_TOTAL_BYTES, export_bundle, import_bundle
from doe.store._designs import DesignRecord, default_design_name, designs_table, with_design_names
from doe.store._engine import default_url, shown
from doe.store._integrity import passage_label
from doe.store._signing import load_site_key, new_key_file
from doe.store._store import ConcurrentEditError, Store, StudyConflictError, study_digest, verify_audit
from doe.store._values import META as RUN_META

__all__ = ["MAX_TOTAL_BYTES", "RUN_META", "AuditCheck", "ConcurrentEditError", "DesignRecord", "SignedHead", "Store",
           "StudyConflictError", "User", "default_design_name",
           "default_url", "designs_table", "export_bundle", "import_bundle", "load_site_key", "new_key_file",
           "passage_label", "same_value", "shown", "stored_cell", "study_digest", "verify_audit", "with_design_names"]
