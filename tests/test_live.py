"""The same job against a real Snowflake account; skipped, with the reason, when none is configured."""

import uuid

from .conftest import live_snowflake_env, snowpark_session
from .test_tutorial_2_job import TUTORIAL_QUERY, run_job, table_rows


def test_the_tutorial_2_job_appends_to_a_table_in_a_real_account() -> None:
    env = live_snowflake_env()
    table = f"results_live_{uuid.uuid4().hex[:8]}"
    try:
        job = run_job(env, f"--query={TUTORIAL_QUERY}", f"--result_table={table}", timeout=300)

        assert job.returncode == 0, job.stdout + job.stderr
        assert "Job finished" in job.stdout
        assert len(table_rows(env, table)) == 1
    finally:
        with snowpark_session(env) as session:
            session.sql(f"drop table if exists {table}").collect()
