"""What a tool call leaves in the audit log: arguments, minus everything secret."""

from __future__ import annotations

import pytest

from node_agent.tools.secrets import audit_arguments, marked_secret, secret_name


@pytest.mark.parametrize("name", ["password", "apiKey", "api_key", "X-Auth-Token", "client_secret",
                                  "privateKey", "authorization", "github_token", "passphrase"])
def test_names_that_say_credential_are_secret(name):
    assert secret_name(name)


@pytest.mark.parametrize("name", ["author", "path", "tokenizer_model", "keyword", "repo_path", "timezone"])
def test_ordinary_names_are_not(name):
    assert not secret_name(name)


def test_schema_marks_make_an_argument_secret_even_deep_inside():
    schema = {"type": "object", "properties": {
        "pin": {"type": "string", "writeOnly": True},
        "login": {"type": "object", "properties": {"code": {"type": "string", "format": "password"}}},
        "repo": {"type": "string"}}}
    assert audit_arguments({"pin": "1234", "login": {"code": "9"}, "repo": "/srv/git"}, schema) == {
        "pin": "***", "login": "***", "repo": "/srv/git"}
    assert not marked_secret({"type": "string", "default": {"format": "password"}})


def test_secret_named_keys_inside_an_unmarked_value_are_masked_and_long_values_cut():
    audited = audit_arguments({"config": {"user": "ada", "password": "hunter2"}, "body": "x" * 1000,
                               "n": 3, "flag": True, "none": None}, None)
    assert audited["config"] == '{"user": "ada", "password": "***"}'
    assert len(audited["body"]) == 200 and audited["body"].endswith("…")
    assert (audited["n"], audited["flag"], audited["none"]) == (3, True, None)
