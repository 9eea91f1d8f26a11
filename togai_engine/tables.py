"""Imports every domain's models so that Base.metadata is complete (for Alembic)."""

from togai_engine.accounts import models as accounts_models  # noqa: F401
from togai_engine.apikeys import models as apikeys_models  # noqa: F401
from togai_engine.audit import models as audit_models  # noqa: F401
from togai_engine.billing import models as billing_models  # noqa: F401
from togai_engine.customers import models as customers_models  # noqa: F401
from togai_engine.events import models as events_models  # noqa: F401
from togai_engine.invoices import credit_note_models as credit_notes_models  # noqa: F401
from togai_engine.invoices import models as invoices_models  # noqa: F401
from togai_engine.licenses import models as licenses_models  # noqa: F401
from togai_engine.meters import models as meters_models  # noqa: F401
from togai_engine.plans import models as plans_models  # noqa: F401
from togai_engine.sandbox import models as sandbox_models  # noqa: F401
from togai_engine.store.base import Base
from togai_engine.wallets import models as wallets_models  # noqa: F401

metadata = Base.metadata
