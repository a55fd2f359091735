-- Tutorial 3: call the Echo service (Tutorial 1, running) from a job, then read its logs.
-- Upload the spec first: PUT file://service_to_service_spec.yaml @tutorial_stage AUTO_COMPRESS=FALSE OVERWRITE=TRUE;
USE ROLE test_role;
USE DATABASE tutorial_db;
USE SCHEMA data_schema;
USE WAREHOUSE tutorial_warehouse;

EXECUTE JOB SERVICE
  IN COMPUTE POOL tutorial_compute_pool
  NAME=tutorial_3_job_service
  FROM @tutorial_stage
  SPECIFICATION_FILE='service_to_service_spec.yaml';

-- The tutorial runs tutorial3_job_service but then queries tutorial_3_job_service: one name here.
DESCRIBE SERVICE tutorial_3_job_service;
SELECT SYSTEM$GET_SERVICE_LOGS('tutorial_3_job_service', 0, 'main');

-- Clean up.
DROP SERVICE IF EXISTS tutorial_3_job_service;
