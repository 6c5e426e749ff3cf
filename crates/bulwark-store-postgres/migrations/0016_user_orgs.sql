-- One person's own memberships across orgs (`GET /v1/me/orgs`, and the org logs a member's
-- sign-in is recorded in). Row-level security hides every other org's memberships from the
-- application role; this owner-run function answers for one user only, with what the user may
-- know of each org (id, slug, name, their role). The owner reads through the policies
-- `orgs_owner_lookup` and `memberships_owner_lookup` (migration 0015).

CREATE FUNCTION bulwark_user_orgs(p_user uuid)
RETURNS TABLE (id uuid, slug text, name text, created_at timestamptz, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT o.id, o.slug, o.name, o.created_at, m.role
    FROM memberships m JOIN orgs o ON o.id = m.org_id
    WHERE m.user_id = p_user
    ORDER BY m.created_at, o.id
$$;

REVOKE ALL ON FUNCTION bulwark_user_orgs(uuid) FROM PUBLIC;
