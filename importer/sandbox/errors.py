"""HubSpot's error answers: the standard error JSON and the rate-limit bodies, keyed to one correlation id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.responses import JSONResponse
from starlette.types import Scope

from importer.sandbox.limits import Policy
from importer.sandbox.properties import Issue

# The gateway puts each request's correlation id here, so the body and X-HubSpot-Correlation-Id agree.
CORRELATION_KEY = "hubspot.correlation_id"

_RATE_LIMIT_MESSAGES = {
    Policy.TEN_SECONDLY_ROLLING: "You have reached your ten_secondly_rolling limit.",
    Policy.DAILY: "You have reached your daily limit.",
    Policy.SECONDLY: "You have reached your secondly limit.",
}
_SERVER_ERRORS = {
    500: ("INTERNAL_ERROR", "An internal error occurred."),
    502: ("BAD_GATEWAY", "Bad gateway: the upstream service did not answer."),
    503: ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable."),
    504: ("GATEWAY_TIMEOUT", "Gateway timeout: the upstream service took too long."),
}
# HubSpot's 403 for a token without the scope a route needs; `errors[].context.requiredGranularScopes`
# lists the scopes of which any one would do.
_MISSING_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. "
    "Read more about required scopes here: https://developers.hubspot.com/scopes."
)
_SCOPES_LINK = {"scopes": "https://developers.hubspot.com/scopes"}


class ApiError(Exception):
    """Raised by a handler to answer with HubSpot's error JSON."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        issues: Sequence[Issue] = (),
        context: dict[str, list[str]] | None = None,
        details: Sequence[Mapping[str, object]] = (),
        links: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.issues = issues
        self.context = context
        self.details = details  # `errors[]` entries that are not property issues
        self.links = links

    def response(self, scope: Scope) -> JSONResponse:
        body: dict[str, object] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(scope),
            "category": self.category,
        }
        if self.issues or self.details:
            body["errors"] = [issue.to_json() for issue in self.issues] + [dict(d) for d in self.details]
        if self.context:
            body["context"] = self.context
        if self.links:
            body["links"] = self.links
        return JSONResponse(body, status_code=self.status)


def validation_error(message: str, issues: Sequence[Issue] = ()) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, issues=issues)


def not_found(message: str) -> ApiError:
    return ApiError(404, "OBJECT_NOT_FOUND", message)


def missing_scopes(scopes: Sequence[str]) -> ApiError:
    detail = {
        "message": "One or more of the following scopes are required.",
        "context": {"requiredGranularScopes": list(scopes)},
    }
    return ApiError(403, "MISSING_SCOPES", _MISSING_SCOPES_MESSAGE, details=[detail], links=_SCOPES_LINK)


def server_error(status: int) -> ApiError:
    category, message = _SERVER_ERRORS[status]
    return ApiError(status, category, message)


def rate_limit_response(scope: Scope, policy: Policy) -> JSONResponse:
    body = {
        "status": "error",
        "message": _RATE_LIMIT_MESSAGES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(scope),
        "policyName": policy.value,
    }
    return JSONResponse(body, status_code=429)


def correlation_id(scope: Scope) -> str:
    return str(scope[CORRELATION_KEY])
