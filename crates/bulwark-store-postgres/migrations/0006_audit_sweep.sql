-- Finding org logs with events no checkpoint covers yet (after a crash, or events appended by
-- another replica), without letting the application role read across orgs.
--
-- Row-level security is forced for the owner too, so the owner gets read-only policies on the
-- two tables it must scan, and bulwark_audit_unsigned_orgs() runs as the owner and returns only
-- org ids. The application role may execute the function; it still sees no other org's rows.

CREATE POLICY audit_heads_owner_sweep ON audit_heads FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY audit_checkpoints_owner_sweep ON audit_checkpoints FOR SELECT TO CURRENT_USER
    USING (true);

CREATE FUNCTION bulwark_audit_unsigned_orgs() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT h.org_id FROM audit_heads h
    WHERE h.org_id IS NOT NULL
      AND ('x' || encode(substring(h.frontier FROM 1 FOR 8), 'hex'))::bit(64)::bigint
          > COALESCE((SELECT max(c.size) FROM audit_checkpoints c WHERE c.log = h.log), 0)
$$;

REVOKE ALL ON FUNCTION bulwark_audit_unsigned_orgs() FROM PUBLIC;
