"""The pages' helpers: everything the Streamlit pages (``pages/<page>.py``, declared by app.py) share.

One module per concern; a page imports what it needs from the module that owns it:

- ``state``: the one typed view of a session's state (``state.study``, ``state.model_choices``, ...),
  every session key with its type and default, and the widget keys code also reads or sets.
- ``services``: every cached computation (``st.cache_data`` / ``st.cache_resource``), keyed by content
  digests (``Study.digest``, the data version of a results table, a design's digest): fits, the
  design-space predictive and its maps, designs and their evaluation, the scale plan, database reads.
- ``common``: the open study (open, change, require it), its runs and fits with the session's model
  choices, and the tables and lazy tabs pages show them in.
- ``db``: the app's store and reads kept while nothing new is saved (the database's change mark).
- ``persist``: who is editing (sign-in or a typed name), saving, and the sidebar's saved-state panel;
  the analysis and decision panels.
- ``study_sync``: the stored version this session's study is based on; saving only on that base.
- ``first_visit``: which study a new session opens.
- ``designs`` and ``design_records``: the Design page's form, and its stored designs.
- ``runs_example``: loading the example results on the Runs page.
- ``spaces``: the Design space page's parts and the view it opens with.
- ``speed``: work done before a page asks for it (warm-up, prefetch threads), and profiling.
- ``live_plot`` (with ``live_plot.js``) and ``plotly_asset``: the design-space map updated in place, and
  the plotly.js bundle app.py serves for it (pages/assets).
- ``streamlit_compat``: every use of a Streamlit internal, each checked by tests/test_compat.py.

Nothing here is imported by ``doe``; nothing outside ``pages/`` and ``app.py`` imports it (tests aside).
"""
