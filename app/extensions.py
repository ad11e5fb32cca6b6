"""Extensions created unbound here and bound in create_app with init_app."""

from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
