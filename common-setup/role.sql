-- The tutorials' Common Setup, the role's part: schema, image repository and stage. Idempotent.
USE ROLE <% role %>;
USE DATABASE <% database %>;
USE WAREHOUSE <% warehouse %>;

CREATE SCHEMA IF NOT EXISTS <% schema %>;
USE SCHEMA <% schema %>;
CREATE IMAGE REPOSITORY IF NOT EXISTS <% repository %>;
CREATE STAGE IF NOT EXISTS <% stage %> DIRECTORY = ( ENABLE = true );
