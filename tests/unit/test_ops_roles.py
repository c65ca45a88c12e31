"""OPS_TOKENS entries name their holder and role; a bare token stays an (unnamed) admin."""

from shared.ops_roles import Role, ops_identities


def test_named_entries_carry_holder_and_role_and_bare_tokens_are_admins() -> None:
    viewer, operator, bare, colons = ops_identities(
        ["li.wei:viewer:t-1", "wang.fang:operator:t:2", "plain-token", "not:a-role:t3"]
    )
    assert (viewer.holder, viewer.role, viewer.token) == ("li.wei", Role.viewer, "t-1")
    assert (operator.role, operator.token) == (Role.operator, "t:2")  # a token may hold colons
    assert (bare.role, bare.token) == (Role.admin, "plain-token")
    assert (colons.role, colons.token) == (Role.admin, "not:a-role:t3")  # no such role: a bare token
    assert Role.viewer < Role.operator < Role.admin
