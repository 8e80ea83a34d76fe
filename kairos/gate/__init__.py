"""The risk/execution gate: intents -> pre-trade risk -> executors -> EXEC_EVENTs (docs/RISK.md)."""
