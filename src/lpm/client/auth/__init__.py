"""Authentication and discovery side calls of the SDK.

* :mod:`~lpm.client.auth.http`: :class:`HttpSettings` (CSDS domain, TLS, shared session, request
  helper that maps failures to :mod:`lpm.errors`).
* :mod:`~lpm.client.auth.csds`: :class:`CSDSCache` and the shared :data:`CSDS` instance.
* :mod:`~lpm.client.auth.agent_login`: agentVep login / refresh / logout (:class:`AgentSession`).
* :mod:`~lpm.client.auth.tokens`: :class:`TokenMaintainer`, :class:`StaticTokenMaintainer`,
  :class:`TokenMaintainerProtocol`.
* :mod:`~lpm.client.auth.idp`: consumer identity (IdP, sentinel, brand-signed id_tokens).
"""

from lpm.client.auth.agent_login import AgentSession
from lpm.client.auth.csds import CSDS, CSDSCache, ServiceName
from lpm.client.auth.http import HttpSettings, RetryPolicy
from lpm.client.auth.tokens import (
    MaintainerState,
    StaticTokenMaintainer,
    TokenMaintainer,
    TokenMaintainerProtocol,
)

__all__ = [
    "CSDS",
    "AgentSession",
    "CSDSCache",
    "HttpSettings",
    "MaintainerState",
    "RetryPolicy",
    "ServiceName",
    "StaticTokenMaintainer",
    "TokenMaintainer",
    "TokenMaintainerProtocol",
]
