"""Audit trail: every create, modify and delete, who and when, old and new values, why; tamper check."""

import pandas as pd
import streamlit as st

from doe.audit_view import audit_csv, audit_frame, audit_jsonl, entity_label, head_frame
from doe.present import present
from pages._app.db import read, store
from pages._app.state import state

st.title("Audit trail")
st.caption("Append-only record of every change (21 CFR 11.10(e), ALCOA+): who, when (UTC), what, the old and "
           "new value and the reason. Each record carries a SHA-256 hash chained to the record before it and "
           "the hash of the data row it is about; the last record (the head) is signed with this site's key, "
           "kept outside the database. A record or a data row altered, added or deleted outside the app is "
           "found when the trail is verified.")

# verified on every view, never from the read cache: a change made outside the app moves no change mark
with st.spinner("Verifying the audit trail and the stored data..."):
    check = store().verify_audit()
if check.ok:
    st.success(str(check))
elif check.entity is not None:
    st.error(f"**{check}** The data of this study cannot be trusted: restore the database from a backup and "
             "report the incident to QA.")
else:
    st.error(f"**{check}** Records from {check.bad_seq} on cannot be trusted: restore the database "
             "from a backup and report the incident to QA.")
if check.head is not None:
    st.markdown("**Signed head** (write it down, or keep the report that prints it: a later view showing an "
                "earlier record, or another hash at this record, means the trail was rolled back or rewritten)")
    st.dataframe(present(head_frame(check.head)), hide_index=True, width="stretch")

study = state.study
trail = read("audit_trail")
if not len(trail):
    st.info("No changes recorded yet.")
    st.stop()
studies = sorted({s for s in trail["study"].dropna()})
c1, c2, c3, c4 = st.columns(4)
where = c1.selectbox("Study", ["(all)", *studies],
                     index=1 + studies.index(study.name) if study is not None and study.name in studies else 0,
                     key="audit_study")
who = c2.multiselect("User", sorted(trail["user_name"].unique()), key="audit_user")
what = c3.multiselect("Action", ["create", "modify", "delete"], key="audit_action")
entity = c4.multiselect("Entity", sorted(trail["entity"].unique()), key="audit_entity", format_func=entity_label)
shown = audit_frame(trail, study=None if where == "(all)" else where, users=who, actions=what, entities=entity)

st.caption(f"{len(shown)} of {len(trail)} records, newest first. Unauthenticated names were typed in "
           "without sign-in.")
st.dataframe(present(shown), hide_index=True, width="stretch", height=min(35 * (len(shown) + 1) + 3, 700),
             column_config={"Old value": st.column_config.TextColumn(width="medium"),
                            "New value": st.column_config.TextColumn(width="medium")})
full = trail if where == "(all)" else trail[trail["study"] == where]
c1, c2 = st.columns(2)
c1.download_button("Download the audit trail (CSV, to read in a spreadsheet)", lambda: audit_csv(full),
                   file_name="audit_trail.csv", mime="text/csv",
                   help="Every column with the hashes. Text that a spreadsheet would run as a formula "
                        "(starting with = + - @) gets a leading apostrophe.")
c2.download_button("Download the audit trail (JSON Lines, to verify the hashes)", lambda: audit_jsonl(full),
                   file_name="audit_trail.jsonl", mime="application/jsonl",
                   help="One record per line, every value exactly as stored and hashed.")
with st.expander("How to verify the chain yourself"):
    st.markdown("Run `python -m doe audit verify --db URL`, or recompute it from the JSON Lines download: each "
                "record's hash is SHA-256 over the previous record's hash followed by the canonical JSON "
                "(sorted keys, no spaces, UTF-8) of its fields `seq, ts, user_name, authenticated, action, "
                "entity, entity_id, study, field, old_value, new_value, reason`, and `row_hash` when it has one "
                "(the digest of the data row, rules in `doe/store/_integrity.py`). The head's signature is "
                "checked with this site's public key (`python -m doe keys`). The CSV download is for "
                "reading: cells that start like a formula carry an added apostrophe there.")
    st.dataframe(pd.DataFrame({"first record": [trail['seq'].min()], "last record": [trail['seq'].max()],
                               "last hash": [trail['hash'].iloc[-1]]}), hide_index=True)
