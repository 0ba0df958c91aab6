from crm_warehouse.warehouse import redact


def test_redact_hides_password_and_keeps_the_rest():
    assert redact("postgresql://loader:s3cret@db.example:5432/crm") == "postgresql://loader:***@db.example:5432/crm"


def test_redact_leaves_passwordless_url_alone():
    assert redact("postgresql://postgres@127.0.0.1:54329/crm") == "postgresql://postgres@127.0.0.1:54329/crm"
