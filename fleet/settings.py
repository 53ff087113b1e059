"""Keelson settings, read from the environment (see README "Configuration").

Nothing here has a production default for a secret: with DEBUG off, SECRET_KEY,
KEELSON_ENCRYPTION_KEYS and ALLOWED_HOSTS must be set or the process refuses to start.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from core.crypto import parse_key_ring
from fleet.env import (
    ImproperEnvironment,
    env_bool,
    env_currency,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("KEELSON_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

# Development-only fallbacks, used only with DEBUG on. They are public, hence insecure.
_DEV_SECRET_KEY = "django-insecure-keelson-development-key-do-not-use-in-production-0123456789"
_DEV_ENCRYPTION_KEY = "S2VlbHNvbi1kZXZlbG9wbWVudC1vbmx5LWtleS0wMDA="

SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else None, required=not DEBUG)
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperEnvironment("SECRET_KEY must be at least 50 characters with 5 distinct ones")

KEELSON_ENCRYPTION_KEYS = env_list(
    "KEELSON_ENCRYPTION_KEYS", [_DEV_ENCRYPTION_KEY] if DEBUG else None
)
parse_key_ring(KEELSON_ENCRYPTION_KEYS)  # fail at start-up, not at first use

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else None)
if not ALLOWED_HOSTS:
    raise ImproperEnvironment("ALLOWED_HOSTS must be set (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "channels",
    "accounts",
    "audit",
    "operations",
    "applications",
    "clusters",
    "costs",
    "policies",
    "dashboard",
    "metrics",
    "notifications",
    "alerts",
    "gitops",
    "updates",
]

MIDDLEWARE = [
    # First: a request's time includes every other middleware's.
    "metrics.process.request_latency_middleware",
    "django.middleware.security.SecurityMiddleware",
    "fleet.csp.security_headers_middleware",
    "fleet.nulguard.nul_guard_middleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A single sign-on session ends with its ID token (accounts/oidc_session.py).
    "accounts.oidc_session.oidc_session_middleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "fleet.urls"
ASGI_APPLICATION = "fleet.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fleet.csp.nonce",
            ],
            # Timestamps, money: one format on every page (fleet/ui/tags.py).
            "builtins": ["fleet.ui.tags"],
        },
    },
]

# --- data stores -------------------------------------------------------------------------
# Set by fleet/asgi.py: the web process keeps its requests' database connections
# (fleet/request_threads.py) and re-reads placement usage in the background.
WEB_PROCESS = env_bool("KEELSON_WEB_PROCESS", False)
DATABASES = {
    "default": parse_database_url(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/keelson"),
        conn_max_age=300 if WEB_PROCESS else 0,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("KEELSON_REDIS_PREFIX", "keelson"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "core.realtime.layer.BlockingPoolChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": env_str("KEELSON_REDIS_PREFIX", "keelson") + ":asgi",
            # per web process; beyond it, Redis commands wait for a free connection
            "max_connections": env_int("KEELSON_CHANNELS_REDIS_CONNECTIONS", 100),
        },
    }
}

# --- Celery (read by core/celery.py with namespace CELERY) ------------------------------
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    "amqp://guest:guest@127.0.0.1:5672//",
    schemes=("amqp", "amqps", "pyamqp", "redis", "rediss"),
)
CELERY_RESULT_BACKEND = env_url(
    "CELERY_RESULT_BACKEND", REDIS_URL, schemes=("redis", "rediss", "unix")
)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60, minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False  # only idempotent tasks opt in (fleet.tasks.keelson_task)
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat runs on two or more machines; one leads through a PostgreSQL lease (fleet/beat.py,
# docs/operations.md). A follower checks the lease every tick: it leads within this many
# seconds of the leader's death. The leader saves each entry's last run after every send.
CELERY_BEAT_SCHEDULER = "fleet.beat:LeaderScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = env_int("KEELSON_BEAT_TICK_SECONDS", 5, minimum=1)
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TIMEZONE = "UTC"

# --- auth, API ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request then gets 401 with WWW-Authenticate.
        # Hashed, scoped, expiring tokens (accounts/tokens.py); legacy DRF keys are
        # converted to them on first use.
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        # A read-scoped API token may only use safe methods.
        "accounts.authentication.TokenScopeAllows",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.KeelsonPagination",
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.StrictJSONParser",
        "core.api.parsers.LimitedFormParser",
        "core.api.parsers.NulRefusingMultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "fleet.api.exceptions.keelson_exception_handler",
    # Token endpoints of the pull-mode agent, per client address (Redis-backed cache).
    "DEFAULT_THROTTLE_RATES": {"agent-token": env_str("KEELSON_AGENT_TOKEN_RATE", "10/min")},
    # The client address is REMOTE_ADDR, never X-Forwarded-For itself (which DRF would
    # otherwise take whole, letting every request pick a new address): the web server
    # resolves forwarded headers from KEELSON_TRUSTED_PROXIES only (fleet/webserver.py).
    "NUM_PROXIES": 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Keelson API",
    "DESCRIPTION": "Multi-cluster Kubernetes fleet management.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ClusterStatusEnum": "clusters.choices.ClusterStatus",
        "ModeEnum": "clusters.choices.ClusterMode",
        "PolicyModeEnum": "policies.choices.Mode",
        "ReportFormatEnum": "policies.choices.ReportFormat",
        "SeverityEnum": "policies.choices.Severity",
        "KindEnum": "policies.choices.RuleKind",
        "TokenScopeEnum": "accounts.choices.TokenScope",
        "AlertSeverityEnum": "alerts.choices.Severity",
        "AlertRuleKindEnum": "alerts.choices.RuleKind",
        "GitSyncResultEnum": "gitops.choices.SyncResult",
    },
}

# --- static files ------------------------------------------------------------------------
STATIC_URL = "/static/"
# The container image collects static files at build into a path outside KEELSON_VAR_DIR
# (a writable volume there would hide them): KEELSON_STATIC_ROOT.
STATIC_ROOT = Path(env_str("KEELSON_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- security ----------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes come over plain HTTP from the orchestrator.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("KEELSON_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- logging -----------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperEnvironment(f"LOG_LEVEL={LOG_LEVEL!r} is not a log level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # Connection retries to member clusters: the probe's outcome is what matters and
        # is recorded on the cluster; one warning per retry would flood the logs.
        "urllib3.connectionpool": {"level": "ERROR"},
    },
}

# --- Keelson -----------------------------------------------------------------------------
# Money on pages and reports is shown in this currency (prices are entered in it).
KEELSON_CURRENCY = env_currency("KEELSON_CURRENCY", "USD")
KEELSON_OPERATION_LOG_LINES = env_int("KEELSON_OPERATION_LOG_LINES", 2000, minimum=10)

# Cluster health (clusters/health.py): a probe every interval; the status changes after
# this many observations in a row agree (3 x 30 s: a dead cluster is Unreachable in 90 s).
KEELSON_COLLECT_INTERVAL = env_int("KEELSON_COLLECT_INTERVAL", 30, minimum=5)
KEELSON_COLLECT_SHARD_SIZE = env_int("KEELSON_COLLECT_SHARD_SIZE", 50, minimum=1)
KEELSON_COLLECT_THREADS = env_int("KEELSON_COLLECT_THREADS", 16, minimum=1)
# Idle keep-alive connections to member clusters one process keeps, over all clusters
# (kube/http.py): bounds its sockets when every cluster is its own endpoint.
KEELSON_KUBE_IDLE_CONNECTIONS = env_int("KEELSON_KUBE_IDLE_CONNECTIONS", 512, minimum=1)
# At most this many clusters a policy sweep batch reads at once (network, TLS, decoding):
# it keeps as many in flight as keep its judging busy (kube/reads.py).
KEELSON_POLICY_READ_THREADS = env_int("KEELSON_POLICY_READ_THREADS", 64, minimum=1)
# Periodic collection reads health every interval but the full inventory (namespaces,
# workloads, storage) only every Nth interval per cluster, or at once when nodes or the
# version changed (clusters/services/collection.py). 1 = every interval.
KEELSON_COLLECT_INVENTORY_EVERY = env_int("KEELSON_COLLECT_INVENTORY_EVERY", 10, minimum=1)
KEELSON_HEALTH_UNREACHABLE_AFTER = env_int("KEELSON_HEALTH_UNREACHABLE_AFTER", 3, minimum=1)
KEELSON_HEALTH_DEGRADED_AFTER = env_int("KEELSON_HEALTH_DEGRADED_AFTER", 2, minimum=1)
KEELSON_HEALTH_RECOVER_AFTER = env_int("KEELSON_HEALTH_RECOVER_AFTER", 2, minimum=1)
KEELSON_HEALTH_FAILING_POD_PERCENT = env_int("KEELSON_HEALTH_FAILING_POD_PERCENT", 10, minimum=0)
KEELSON_HEALTH_SLOW_API_MS = env_int("KEELSON_HEALTH_SLOW_API_MS", 2000, minimum=1)
# Pull-mode agents: heartbeat interval they are told to use; silent for this many
# intervals means Unreachable.
KEELSON_AGENT_HEARTBEAT_INTERVAL = env_int("KEELSON_AGENT_HEARTBEAT_INTERVAL", 30, minimum=1)
KEELSON_AGENT_MISSED_HEARTBEATS = env_int("KEELSON_AGENT_MISSED_HEARTBEATS", 3, minimum=1)
KEELSON_BOOTSTRAP_TOKEN_TTL = env_int("KEELSON_BOOTSTRAP_TOKEN_TTL", 24 * 3600, minimum=60)
# Agent tokens expire after this many seconds; the agent rotates its own at half its life.
KEELSON_AGENT_TOKEN_TTL = env_int("KEELSON_AGENT_TOKEN_TTL", 30 * 24 * 3600, minimum=300)
# The agent image the install manifest runs (GET /api/v1/clusters/<name>/agent-manifest/).
KEELSON_AGENT_IMAGE = env_str("KEELSON_AGENT_IMAGE", "ghcr.io/keelson/keelson-agent:0.1.0")
# Deregistration with cleanup waits this long for a pull cluster's agent to report its
# cleanup; past it the agent is revoked and what may be left is listed.
KEELSON_AGENT_CLEANUP_TIMEOUT = env_int("KEELSON_AGENT_CLEANUP_TIMEOUT", 900, minimum=30)
# Retention of health history, in days: raw samples, hourly and daily rollups.
KEELSON_HEALTH_RAW_DAYS = env_int("KEELSON_HEALTH_RAW_DAYS", 7, minimum=1)
KEELSON_HEALTH_HOURLY_DAYS = env_int("KEELSON_HEALTH_HOURLY_DAYS", 90, minimum=1)
KEELSON_HEALTH_DAILY_DAYS = env_int("KEELSON_HEALTH_DAILY_DAYS", 730, minimum=1)

# Seconds every call to a member cluster may take to connect, and to answer (kube/client.py).
KEELSON_CLUSTER_CONNECT_TIMEOUT = env_float("KEELSON_CLUSTER_CONNECT_TIMEOUT", 5.0, minimum=0.1)
KEELSON_CLUSTER_READ_TIMEOUT = env_float("KEELSON_CLUSTER_READ_TIMEOUT", 15.0, minimum=0.1)

# Addresses the hub may connect to as cluster API servers and notification webhooks
# (core/egress.py): CIDRs, hosts and *.domain suffixes; empty allows any non-link-local,
# non-loopback address.
KEELSON_CLUSTER_URL_ALLOWLIST = env_list("KEELSON_CLUSTER_URL_ALLOWLIST", [])
KEELSON_CLUSTER_ALLOW_LOOPBACK = env_bool("KEELSON_CLUSTER_ALLOW_LOOPBACK", False)


# --- single sign-on (accounts/oidc.py, docs/configuration.md "Single sign-on") ------------
# OpenID Connect: authorization code flow with PKCE against the issuer's discovery document.
# Empty issuer: no single sign-on. The client secret may come from ..._SECRET_FILE.
KEELSON_OIDC_ISSUER = env_str("KEELSON_OIDC_ISSUER", "").rstrip("/")
if KEELSON_OIDC_ISSUER:
    # https, except a provider on this machine's loopback (development, tests).
    _loopback = KEELSON_OIDC_ISSUER.startswith(
        ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")
    )
    env_url("KEELSON_OIDC_ISSUER", "", schemes=("https", "http") if _loopback else ("https",))
KEELSON_OIDC_CLIENT_ID = env_str("KEELSON_OIDC_CLIENT_ID", "", required=bool(KEELSON_OIDC_ISSUER))
KEELSON_OIDC_CLIENT_SECRET = env_str("KEELSON_OIDC_CLIENT_SECRET", "")
KEELSON_OIDC_SCOPES = env_str("KEELSON_OIDC_SCOPES", "openid profile email groups")
KEELSON_OIDC_GROUPS_CLAIM = env_str("KEELSON_OIDC_GROUPS_CLAIM", "groups")
# The claim that names a new user (their Keelson user name); `sub` when it is missing.
KEELSON_OIDC_USERNAME_CLAIM = env_str("KEELSON_OIDC_USERNAME_CLAIM", "preferred_username")
KEELSON_OIDC_DISCOVERY_TTL = env_int("KEELSON_OIDC_DISCOVERY_TTL", 3600, minimum=0)
KEELSON_OIDC_TIMEOUT = env_float("KEELSON_OIDC_TIMEOUT", 10.0, minimum=0.1)
# A single sign-on session lasts as long as its ID token, or this many seconds if longer
# (0: exactly the token's); then the next page re-authenticates at the provider.
KEELSON_OIDC_SESSION_SECONDS = env_int("KEELSON_OIDC_SESSION_SECONDS", 0, minimum=0)
# The user-name/password form: off leaves single sign-on as the only way in.
KEELSON_LOCAL_LOGIN = env_bool("KEELSON_LOCAL_LOGIN", True)
if not KEELSON_LOCAL_LOGIN and not KEELSON_OIDC_ISSUER:
    raise ImproperEnvironment("KEELSON_LOCAL_LOGIN=off needs KEELSON_OIDC_ISSUER (no way in)")

KEELSON_LOGIN_MAX_FAILURES = env_int("KEELSON_LOGIN_MAX_FAILURES", 5, minimum=1)
KEELSON_LOGIN_WINDOW = env_int("KEELSON_LOGIN_WINDOW", 300, minimum=10)

# Request and resource limits (README, Security: "Limits"). Bodies past the endpoint's
# limit answer 413; the agent's heartbeats carry a whole cluster's inventory.
KEELSON_API_MAX_BODY_BYTES = env_int("KEELSON_API_MAX_BODY_BYTES", 2 * 2**20, minimum=1024)
KEELSON_AGENT_MAX_BODY_BYTES = env_int("KEELSON_AGENT_MAX_BODY_BYTES", 32 * 2**20, minimum=1024)
KEELSON_API_MAX_PAGE_SIZE = env_int("KEELSON_API_MAX_PAGE_SIZE", 500, minimum=1)
KEELSON_MAX_LABELS = env_int("KEELSON_MAX_LABELS", 64, minimum=1)
# A websocket answers at most one resync per this many seconds; sockets re-check that
# their user may still see what they stream this often (and close when not).
KEELSON_WS_RESYNC_INTERVAL = env_int("KEELSON_WS_RESYNC_INTERVAL", 5, minimum=0)
KEELSON_WS_AUTH_RECHECK_SECONDS = env_int("KEELSON_WS_AUTH_RECHECK_SECONDS", 30, minimum=1)
# Anonymous refusals (401) are audited once per address and path per window, with a count.
KEELSON_AUDIT_DENIED_WINDOW = env_int("KEELSON_AUDIT_DENIED_WINDOW", 60, minimum=1)
# API tokens: lifetime when none is asked for, and the longest a user may ask for (days).
KEELSON_API_TOKEN_DEFAULT_DAYS = env_int("KEELSON_API_TOKEN_DEFAULT_DAYS", 90, minimum=1)
KEELSON_API_TOKEN_MAX_DAYS = env_int(
    "KEELSON_API_TOKEN_MAX_DAYS", max(365, KEELSON_API_TOKEN_DEFAULT_DAYS), minimum=1
)
if KEELSON_API_TOKEN_DEFAULT_DAYS > KEELSON_API_TOKEN_MAX_DAYS:
    raise ImproperEnvironment("KEELSON_API_TOKEN_DEFAULT_DAYS exceeds KEELSON_API_TOKEN_MAX_DAYS")

# Per-team quota of the `local` provider (clusters that run on this host).
KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM = env_int("KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM", 5, minimum=0)
KEELSON_LOCAL_MAX_NODES_PER_TEAM = env_int("KEELSON_LOCAL_MAX_NODES_PER_TEAM", 10, minimum=0)

# The `local` provider keeps each cluster's processes and data here.
# Where git repositories (gitops) are fetched: one checkout per repository.
KEELSON_GITOPS_DIR = env_str("KEELSON_GITOPS_DIR", str(VAR_DIR / "gitops"))
# Extra CA certificates (PEM) git trusts for https:// repositories (a private Git server).
KEELSON_GITOPS_CA_FILE = env_str("KEELSON_GITOPS_CA_FILE", "")
# The kubectl that renders an Application's `kustomize: {path: ...}` (`kubectl kustomize`),
# and how long one rendering may take.
KEELSON_KUBECTL = env_str("KEELSON_KUBECTL", "kubectl")
KEELSON_KUSTOMIZE_TIMEOUT = env_int("KEELSON_KUSTOMIZE_TIMEOUT", 30, minimum=1)
KEELSON_LOCAL_CLUSTERS_DIR = env_str("KEELSON_LOCAL_CLUSTERS_DIR", str(VAR_DIR / "local-clusters"))

# Update runs: how long after a cluster's change its failing health gates are checked
# again before the cluster fails (workloads rescheduled by a drain becoming available).
KEELSON_UPDATE_GATE_GRACE_SECONDS = env_int("KEELSON_UPDATE_GATE_GRACE_SECONDS", 60, minimum=0)

# A node pool's rolling replacement (clusters.services.pool_update): how long one node's
# drain may wait (PodDisruptionBudgets, held pods) before the update fails, and how long a
# replacement node has to become Ready.
KEELSON_POOL_DRAIN_TIMEOUT = env_int("KEELSON_POOL_DRAIN_TIMEOUT", 1800, minimum=1)
KEELSON_POOL_NODE_READY_TIMEOUT = env_int("KEELSON_POOL_NODE_READY_TIMEOUT", 600, minimum=1)

# How often the `capi` provider reads the Cluster API objects it follows.
KEELSON_CAPI_POLL_SECONDS: float = env_int("KEELSON_CAPI_POLL_SECONDS", 10, minimum=1)

# Re-place on cluster changes, correct drift and refresh application status this often.
KEELSON_PLACEMENT_RECONCILE_INTERVAL = env_int(
    "KEELSON_PLACEMENT_RECONCILE_INTERVAL", 60, minimum=5
)
# Re-apply each application's objects to each cluster (drift correction) at most this often.
KEELSON_PLACEMENT_DRIFT_INTERVAL = env_int("KEELSON_PLACEMENT_DRIFT_INTERVAL", 300, minimum=0)
# Placement keeps each team's clusters in memory (applications.cache) and sees every
# change at once, except requested CPU/memory, which collection moves all the time: those
# figures are re-read (only where they changed) at most this many seconds apart.
KEELSON_PLACEMENT_USAGE_MAX_AGE = env_int("KEELSON_PLACEMENT_USAGE_MAX_AGE", 15, minimum=0)
# > 0: a thread per process re-reads those figures every this many seconds, off the calls'
# path (docs/performance.md, "Placement"). On (1 s) in the web, where simulate and previews
# answer users; off in workers: one more database connection per process, for decisions
# that are fast without it.
KEELSON_PLACEMENT_USAGE_REFRESH = env_float(
    "KEELSON_PLACEMENT_USAGE_REFRESH", 1.0 if WEB_PROCESS else 0.0, minimum=0
)

# Threads per web process for requests' synchronous work, each keeping its database
# connection (fleet/request_threads.py): at most this many connections per web process.
KEELSON_WEB_THREADS = env_int("KEELSON_WEB_THREADS", 16, minimum=1)

# Seconds between alerts' periodic passes (docs/configuration.md).
KEELSON_ALERTS_INTERVAL = env_int("KEELSON_ALERTS_INTERVAL", 15, minimum=5)
# Days resolved alerts and ended silences are kept (alerts/services/retention.py).
KEELSON_ALERTS_RETENTION_DAYS = env_int("KEELSON_ALERTS_RETENTION_DAYS", 180, minimum=1)

CELERY_BEAT_SCHEDULE = {
    "clusters-collect": {
        "task": "clusters.tasks.clusters_collect_fanout_task",
        "schedule": float(KEELSON_COLLECT_INTERVAL),
        "options": {"expires": KEELSON_COLLECT_INTERVAL},
    },
    "notifications-deliveries-due": {
        "task": "notifications.tasks.deliveries_due_task",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    "notifications-deliveries-purge": {
        "task": "notifications.tasks.deliveries_purge_task",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600},
    },
    "operations-redispatch": {
        "task": "fleet.tasks.operations_redispatch_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "placement-reconcile": {
        "task": "applications.tasks.placement_reconcile_fanout_task",
        "schedule": float(KEELSON_PLACEMENT_RECONCILE_INTERVAL),
        "options": {"expires": KEELSON_PLACEMENT_RECONCILE_INTERVAL},
    },
    "cost-compute": {"task": "costs.tasks.cost_compute_task", "schedule": 600.0},
    "budgets-check": {"task": "costs.tasks.budgets_check_task", "schedule": 3600.0},
    "policies-evaluate": {
        "task": "policies.tasks.policies_evaluate_fanout_task",
        "schedule": 600.0,
    },
    "clusters-health-rollup": {
        "task": "clusters.tasks.clusters_health_rollup_task",
        "schedule": 300.0,
    },
    # Alert rules without an event (and a backstop for those with one), silences that
    # ended, groups due to notify (alerts/services/passes.py).
    "alerts-evaluate": {
        "task": "alerts.tasks.alerts_evaluate_task",
        "schedule": float(KEELSON_ALERTS_INTERVAL),
        "options": {"expires": KEELSON_ALERTS_INTERVAL},
    },
    # Resolved alerts and ended silences past KEELSON_ALERTS_RETENTION_DAYS.
    "alerts-purge": {
        "task": "alerts.tasks.alerts_purge_task",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600},
    },
    # Each repository is synced when its own poll interval has passed (gitops.services).
    "gitops-poll": {
        "task": "gitops.tasks.git_repositories_poll_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
}

# --- mail (compliance reports, notifications) ----------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")  # or EMAIL_HOST_PASSWORD_FILE
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "keelson@localhost")
# Seconds each SMTP socket operation may take (a notification's worker is never held longer).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)

# --- notification deliveries (notifications/, docs/configuration.md "Notifications") ------
# Each webhook request may take this many seconds in all (connect and answer).
KEELSON_NOTIFY_TIMEOUT = env_float("KEELSON_NOTIFY_TIMEOUT", 5.0, minimum=0.1)
# Attempts per delivery before it becomes a dead letter; the delay before a retry doubles
# from KEELSON_NOTIFY_BACKOFF_SECONDS up to KEELSON_NOTIFY_BACKOFF_MAX_SECONDS (jittered).
KEELSON_NOTIFY_MAX_ATTEMPTS = env_int("KEELSON_NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
KEELSON_NOTIFY_BACKOFF_SECONDS = env_float("KEELSON_NOTIFY_BACKOFF_SECONDS", 10.0, minimum=0.01)
KEELSON_NOTIFY_BACKOFF_MAX_SECONDS = env_float(
    "KEELSON_NOTIFY_BACKOFF_MAX_SECONDS", 600.0, minimum=0.01
)
# Delivered and dead deliveries older than this many days are deleted (daily).
KEELSON_NOTIFY_RETENTION_DAYS = env_int("KEELSON_NOTIFY_RETENTION_DAYS", 30, minimum=1)
# A firing alert posted to Alertmanager ends this many seconds later unless resolved first.
KEELSON_ALERTMANAGER_ALERT_TTL = env_int("KEELSON_ALERTMANAGER_ALERT_TTL", 24 * 3600, minimum=60)

# --- Prometheus metrics (metrics/, docs/configuration.md "Metrics") -----------------------
# `/metrics` answers only with a bearer token and/or from allowed networks (CIDRs; the
# client address as the web server resolves it with KEELSON_TRUSTED_PROXIES); with
# neither it does not exist (404). The token may come from KEELSON_METRICS_TOKEN_FILE.
KEELSON_METRICS_TOKEN = env_str("KEELSON_METRICS_TOKEN", "")
KEELSON_METRICS_ALLOWED_NETWORKS: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
for _entry in env_list("KEELSON_METRICS_ALLOWED_NETWORKS", []):
    try:
        KEELSON_METRICS_ALLOWED_NETWORKS.append(ipaddress.ip_network(_entry, strict=False))
    except ValueError:
        raise ImproperEnvironment(
            f"KEELSON_METRICS_ALLOWED_NETWORKS: {_entry!r} is not an IP network"
        ) from None
# Per-cluster series (health score, nodes, API latency): 3 series per cluster.
KEELSON_METRICS_PER_CLUSTER = env_bool("KEELSON_METRICS_PER_CLUSTER", False)
KEELSON_REDIS_PREFIX = env_str("KEELSON_REDIS_PREFIX", "keelson")
