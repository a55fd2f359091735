-- Tutorial 1, step 4: use the service through its function, and find the web UI.
USE ROLE test_role;
USE DATABASE tutorial_db;
USE SCHEMA data_schema;
USE WAREHOUSE tutorial_warehouse;

SELECT my_echo_udf('hello!');

CREATE OR REPLACE TABLE messages (message_text VARCHAR)
  AS (SELECT * FROM (VALUES ('Thank you'), ('Hello'), ('Hello World')));
SELECT * FROM messages;
SELECT my_echo_udf(message_text) FROM messages;

-- The web UI: open https://<ingress_url>/ui in a browser.
SHOW ENDPOINTS IN SERVICE echo_service;
