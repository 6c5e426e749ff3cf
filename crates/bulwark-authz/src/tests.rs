use super::*;

fn engine() -> Engine {
    Engine::new().unwrap()
}

fn user(role: Option<Role>) -> Principal {
    Principal {
        user: UserId::new(),
        role,
        teams: Vec::new(),
    }
}

fn member(org: OrgId, role: Role) -> Resource {
    Resource::Member {
        org,
        user: UserId::new(),
        role,
    }
}

fn allowed(e: &Engine, p: &Principal, action: Action, r: &Resource) -> bool {
    e.decide(e.builtin(), p, action, r, &Facts::default())
        .allowed()
}

#[test]
fn the_schema_declares_exactly_our_actions() {
    let declared: HashSet<String> = SCHEMA
        .lines()
        .filter_map(|l| l.trim().strip_prefix("action \""))
        .filter_map(|l| l.split('"').next())
        .filter(|name| name.contains('.'))
        .map(str::to_owned)
        .collect();
    let ours: HashSet<String> = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    assert_eq!(declared, ours);
    for action in Action::ALL {
        assert_eq!(Action::parse(action.as_str()), Some(action));
    }
}

#[test]
fn builtin_roles_do_what_the_docs_say() {
    let e = engine();
    let org = OrgId::new();
    let on_org = Resource::Org(org);
    let owner = user(Some(Role::Owner));
    let admin = user(Some(Role::Admin));
    let auditor = user(Some(Role::Auditor));
    let plain = user(Some(Role::Member));
    for action in Action::ALL.into_iter().filter(|a| a.for_people()) {
        let resource = match action {
            Action::AccountUse => Resource::Account(owner.user),
            Action::MembersSessionsRevoke
            | Action::MembersMfaReset
            | Action::MembersRoleWrite
            | Action::MembersRemove => member(org, Role::Member),
            Action::InvitationsCreate => Resource::Invitation {
                org,
                role: Role::Member,
            },
            Action::TeamsMembersWrite => Resource::Team {
                org,
                team: "team_1".into(),
                name: "Ops".into(),
            },
            _ => on_org.clone(),
        };
        let facts = Facts {
            granted_role: Some(Role::Member),
        };
        let d = e.decide(e.builtin(), &owner, action, &resource, &facts);
        assert!(d.allowed(), "owners may {}: {d:?}", action.as_str());
        assert!(d.errors.is_empty(), "{d:?}");
    }
    // Admins manage, but not the org's rules.
    assert!(allowed(&e, &admin, Action::AuditRead, &on_org));
    assert!(allowed(&e, &admin, Action::InvitationsRead, &on_org));
    assert!(allowed(&e, &admin, Action::OrgPolicyRead, &on_org));
    for rule in [
        Action::OrgPolicyWrite,
        Action::AuthzPoliciesWrite,
        Action::AuditRetentionWrite,
    ] {
        let d = e.decide(e.builtin(), &admin, rule, &on_org, &Facts::default());
        assert!(!d.allowed());
        assert_eq!(d.policies, ["builtin.admin.not-rules"], "named forbid");
    }
    // Auditors read the audit log and nothing that manages.
    assert!(allowed(&e, &auditor, Action::AuditRead, &on_org));
    assert!(!allowed(&e, &auditor, Action::InvitationsRead, &on_org));
    assert!(!allowed(&e, &auditor, Action::AuditRetentionWrite, &on_org));
    // Members read the member and team lists only.
    assert!(allowed(&e, &plain, Action::MembersRead, &on_org));
    assert!(!allowed(&e, &plain, Action::AuditRead, &on_org));
    assert!(!allowed(
        &e,
        &plain,
        Action::MembersSessionsRevoke,
        &member(org, Role::Member)
    ));
}

#[test]
fn admins_cannot_touch_owners_or_make_them() {
    let e = engine();
    let org = OrgId::new();
    let admin = user(Some(Role::Admin));
    for action in [
        Action::MembersSessionsRevoke,
        Action::MembersMfaReset,
        Action::MembersRemove,
    ] {
        assert!(allowed(&e, &admin, action, &member(org, Role::Member)));
        let d = e.decide(
            e.builtin(),
            &admin,
            action,
            &member(org, Role::Owner),
            &Facts::default(),
        );
        assert!(!d.allowed());
        assert_eq!(d.policies, ["builtin.admin.not-owners"]);
    }
    let grant = |role| Facts {
        granted_role: Some(role),
    };
    let target = member(org, Role::Member);
    assert!(
        e.decide(
            e.builtin(),
            &admin,
            Action::MembersRoleWrite,
            &target,
            &grant(Role::Auditor)
        )
        .allowed()
    );
    let d = e.decide(
        e.builtin(),
        &admin,
        Action::MembersRoleWrite,
        &target,
        &grant(Role::Owner),
    );
    assert_eq!(d.policies, ["builtin.admin.no-owner-grants"]);
    let invite = |role| Resource::Invitation { org, role };
    assert!(allowed(
        &e,
        &admin,
        Action::InvitationsCreate,
        &invite(Role::Admin)
    ));
    assert!(!allowed(
        &e,
        &admin,
        Action::InvitationsCreate,
        &invite(Role::Owner)
    ));
}

#[test]
fn outsiders_and_other_accounts_get_nothing() {
    let e = engine();
    let org = OrgId::new();
    let outsider = user(None);
    for action in Action::ALL {
        let d = e.decide(
            e.builtin(),
            &outsider,
            action,
            &Resource::Org(org),
            &Facts::default(),
        );
        assert!(!d.allowed(), "{}", action.as_str());
    }
    assert!(allowed(
        &e,
        &outsider,
        Action::AccountUse,
        &Resource::Account(outsider.user)
    ));
    // Another user's account, even for an owner.
    let owner = user(Some(Role::Owner));
    let d = e.decide(
        e.builtin(),
        &outsider,
        Action::AccountUse,
        &Resource::Account(owner.user),
        &Facts::default(),
    );
    assert!(!d.allowed());
    assert!(d.policies.is_empty(), "nothing permits it: {d:?}");
}

#[test]
fn org_policies_add_permits_and_forbids_and_change_the_hash() {
    let e = engine();
    let org = OrgId::new();
    let auditor = user(Some(Role::Auditor));
    let on_org = Resource::Org(org);
    let set = e
        .with_org_policies(
            r#"@id("org.auditors-see-invitations")
               permit (principal in Bulwark::Role::"auditor",
                       action == Bulwark::Action::"invitations.read", resource);
               @id("org.no-admin-exports")
               forbid (principal in Bulwark::Role::"admin",
                       action == Bulwark::Action::"audit.read", resource);"#,
        )
        .unwrap();
    assert_ne!(set.hash(), e.builtin().hash());
    let d = e.decide(
        &set,
        &auditor,
        Action::InvitationsRead,
        &on_org,
        &Facts::default(),
    );
    assert!(d.allowed());
    assert_eq!(d.policies, ["org.auditors-see-invitations"]);
    assert_eq!(d.policy_set, set.hash());
    let admin = user(Some(Role::Admin));
    let d = e.decide(&set, &admin, Action::AuditRead, &on_org, &Facts::default());
    assert_eq!(d.policies, ["org.no-admin-exports"]);
    // A team can be granted an action.
    let mut ops = user(Some(Role::Member));
    ops.teams.push("team_ops".into());
    let set = e
        .with_org_policies(
            r#"@id("org.ops-read-audit")
               permit (principal in Bulwark::Team::"team_ops",
                       action == Bulwark::Action::"audit.read", resource);"#,
        )
        .unwrap();
    assert!(
        e.decide(&set, &ops, Action::AuditRead, &on_org, &Facts::default())
            .allowed()
    );
    ops.teams.clear();
    assert!(
        !e.decide(&set, &ops, Action::AuditRead, &on_org, &Facts::default())
            .allowed()
    );
    // The stored text replays to the same set.
    let again = e.stored(set.text()).unwrap();
    assert_eq!(again.hash(), set.hash());
    assert_eq!(again.ids(), set.ids());
}

#[test]
fn invalid_org_policies_are_refused_with_reasons() {
    let e = engine();
    let cases = [
        ("permit (principal, action, resource", "not valid"),
        ("permit (principal, action, resource);", "no @id"),
        (
            r#"@id("builtin.owner") permit (principal, action, resource);"#,
            "must start with `org.`",
        ),
        (
            r#"@id("org.x") permit (principal, action == Bulwark::Action::"audit.delete", resource);"#,
            "audit.delete",
        ),
        (
            r#"@id("org.x") permit (principal, action, resource) when { resource.colour == "red" };"#,
            "colour",
        ),
        (
            r#"@id("org.x") permit (principal, action, resource);
               @id("org.x") permit (principal, action, resource);"#,
            "org.x",
        ),
        (
            r#"@id("org.t") permit (principal == ?principal, action, resource);"#,
            "template",
        ),
    ];
    for (text, needle) in cases {
        let err = match e.with_org_policies(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(needle), "{text}: {err}");
    }
    let huge = "x".repeat(MAX_POLICY_BYTES + 1);
    assert!(matches!(
        e.with_org_policies(&huge),
        Err(PolicyError::TooLarge(_))
    ));
}

#[test]
fn keys_act_only_in_their_org_within_their_scopes() {
    let e = engine();
    let org = OrgId::new();
    let key = KeyPrincipal {
        key: "key_1".into(),
        org,
        scopes: vec!["audit:read".into()],
        team: None,
    };
    let d = e.decide_key(e.builtin(), &key, Action::AuditRead, &Resource::Org(org));
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.policies, ["builtin.key.audit-read"]);
    // Another org's log, a scope it lacks, and anything a person does: refused.
    let other = Resource::Org(OrgId::new());
    assert!(
        !e.decide_key(e.builtin(), &key, Action::AuditRead, &other)
            .allowed()
    );
    assert!(
        !e.decide_key(e.builtin(), &key, Action::MembersRead, &Resource::Org(org))
            .allowed()
    );
    for action in [
        Action::AuditRetentionWrite,
        Action::KeysWrite,
        Action::AuthzPoliciesWrite,
        Action::InvitationsRead,
    ] {
        let d = e.decide_key(e.builtin(), &key, action, &Resource::Org(org));
        assert!(!d.allowed(), "{}", action.as_str());
    }
    // An org policy cannot hand a key a person's action: the schema does not allow keys there.
    let bad = r#"@id("org.keys-admin") permit(principal is Bulwark::ApiKey, action == Bulwark::Action::"keys.write", resource);"#;
    assert!(e.with_org_policies(bad).is_err());
}

#[test]
fn an_org_policy_can_name_the_keys_of_a_team() {
    let e = engine();
    let org = OrgId::new();
    let key = |team: Option<&str>| KeyPrincipal {
        key: format!("key_{}", team.unwrap_or("org")),
        org,
        scopes: vec!["audit:read".into()],
        team: team.map(str::to_owned),
    };
    let rules = r#"@id("org.no-ci-audit") forbid(principal in Bulwark::Team::"team_ci", action == Bulwark::Action::"audit.read", resource);"#;
    let set = e.with_org_policies(rules).unwrap();
    let read = |k: &KeyPrincipal| e.decide_key(&set, k, Action::AuditRead, &Resource::Org(org));
    let d = read(&key(Some("team_ci")));
    assert!(!d.allowed());
    assert_eq!(d.policies, ["org.no-ci-audit"]);
    assert!(read(&key(Some("team_ops"))).allowed());
    assert!(read(&key(None)).allowed());
    // A permit of everything to the team still leaves its keys within their scopes.
    let all =
        r#"@id("org.ci-all") permit(principal in Bulwark::Team::"team_ci", action, resource);"#;
    let set = e.with_org_policies(all).unwrap();
    let d = e.decide_key(
        &set,
        &key(Some("team_ci")),
        Action::MembersRead,
        &Resource::Org(org),
    );
    assert!(!d.allowed());
    assert_eq!(d.policies, [KEYS_STAY_IN_SCOPE]);
}
