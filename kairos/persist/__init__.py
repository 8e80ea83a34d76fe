"""The persister: rings -> local spool -> PostgreSQL (batched binary COPY) and Redis hot state.

Design, schema, keys and numbers: docs/PERSISTENCE.md. Entry point: ``python -m procs.persister``.
"""
