-- API keys issued to a team (issue 5). Same meaning as
-- bulwark-store-sqlite/migrations/0012: the team a key was issued to, kept after the team is
-- deleted (its keys are revoked then, in the same transaction) so the history still names it.
-- Not a foreign key for that reason; the application checks the team exists in the key's org
-- in the issuing transaction. A customer's key (key space) never has a team.

ALTER TABLE api_keys ADD COLUMN team_id UUID;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_team_not_space CHECK (team_id IS NULL OR space IS NULL);
CREATE INDEX api_keys_team_idx ON api_keys (org_id, team_id);

-- The org's own keys lose the scopes that were reserved for features not built yet
-- (`audit:write`, `webhooks:write`): they granted nothing, and must not start granting something
-- the day those features ship. Customers' keys (key spaces) keep their application's scopes.
UPDATE api_keys
SET scopes = trim(replace(replace(' ' || scopes || ' ', ' audit:write ', ' '), ' webhooks:write ', ' '))
WHERE space IS NULL;
