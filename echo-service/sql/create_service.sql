-- Tutorial 1, step 3: create the Echo service and its service function.
-- Upload the spec first: PUT file://echo_spec.yaml @tutorial_stage AUTO_COMPRESS=FALSE OVERWRITE=TRUE;
USE ROLE test_role;
USE DATABASE tutorial_db;
USE SCHEMA data_schema;
USE WAREHOUSE tutorial_warehouse;

CREATE SERVICE echo_service
  IN COMPUTE POOL tutorial_compute_pool
  FROM @tutorial_stage
  SPECIFICATION_FILE='echo_spec.yaml'
  MIN_INSTANCES=1
  MAX_INSTANCES=1;

-- Wait until the service is READY (up to 5 minutes), then look at it.
SELECT SYSTEM$WAIT_FOR_SERVICES(300, 'echo_service');
SHOW SERVICES;
DESCRIBE SERVICE echo_service;

-- OR REPLACE, so that the file can run again (the tutorial writes CREATE FUNCTION).
CREATE OR REPLACE FUNCTION my_echo_udf (InputText varchar)
  RETURNS varchar
  SERVICE=echo_service
  ENDPOINT=echoendpoint
  AS '/echo';
