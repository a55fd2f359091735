-- Tutorial 1, clean up: the function, the service, and the pool's running services.
USE ROLE test_role;
USE DATABASE tutorial_db;
USE SCHEMA data_schema;

DROP FUNCTION IF EXISTS my_echo_udf(varchar);
DROP SERVICE IF EXISTS echo_service;
ALTER COMPUTE POOL tutorial_compute_pool STOP ALL;
