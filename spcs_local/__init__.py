"""Local tooling for the SPCS tutorials: run things here as Snowflake would run them there."""
