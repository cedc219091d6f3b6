from decile.config import load_settings
from decile.service import run
from decile_risk.app import create_app
from decile_risk.settings import RiskSettings

run(lambda: create_app(load_settings(RiskSettings)))
