"""Extensions created unbound here and bound in create_app with init_app."""

from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

migrate = Migrate()
csrf = CSRFProtect()
