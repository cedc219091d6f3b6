from decile.config import load_settings
from decile.service import run
from decile_confirm.app import create_app
from decile_confirm.settings import ConfirmSettings

run(lambda: create_app(load_settings(ConfirmSettings)))
