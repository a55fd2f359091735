-- Tutorial 2: run the job from the staged spec, then look at its status, logs and result.
-- Upload the spec first: PUT file://my_job_spec.yaml @tutorial_stage AUTO_COMPRESS=FALSE OVERWRITE=TRUE;
USE ROLE test_role;
USE DATABASE tutorial_db;
USE SCHEMA data_schema;
USE WAREHOUSE tutorial_warehouse;

EXECUTE JOB SERVICE
  IN COMPUTE POOL tutorial_compute_pool
  NAME=tutorial_2_job_service
  FROM @tutorial_stage
  SPECIFICATION_FILE='my_job_spec.yaml';

DESCRIBE SERVICE tutorial_2_job_service;
SHOW SERVICE CONTAINERS IN SERVICE tutorial_2_job_service;
SELECT SYSTEM$GET_SERVICE_LOGS('tutorial_2_job_service', 0, 'main');
SELECT * FROM results;

-- Clean up.
DROP SERVICE IF EXISTS tutorial_2_job_service;
