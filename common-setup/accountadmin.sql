-- The tutorials' Common Setup, ACCOUNTADMIN part: the role, its database, warehouse and compute pool.
-- Idempotent. Run by `make setup` (snow sql fills in the <% ... %> names), or paste into Snowsight.
USE ROLE ACCOUNTADMIN;

CREATE ROLE IF NOT EXISTS <% role %>;

CREATE DATABASE IF NOT EXISTS <% database %>;
GRANT OWNERSHIP ON DATABASE <% database %> TO ROLE <% role %> COPY CURRENT GRANTS;

CREATE WAREHOUSE IF NOT EXISTS <% warehouse %> WITH WAREHOUSE_SIZE='X-SMALL';
GRANT USAGE ON WAREHOUSE <% warehouse %> TO ROLE <% role %>;

GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE <% role %>;

CREATE COMPUTE POOL IF NOT EXISTS <% compute_pool %>
  MIN_NODES = 1
  MAX_NODES = 1
  INSTANCE_FAMILY = CPU_X64_XS;
GRANT USAGE, MONITOR ON COMPUTE POOL <% compute_pool %> TO ROLE <% role %>;

SET me = CURRENT_USER();
GRANT ROLE <% role %> TO USER IDENTIFIER($me);
