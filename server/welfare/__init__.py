"""Welfare-service catalogue, its Korean search and the `search_welfare_services` tool."""

from server.welfare.catalog import SHIPPED_CATALOG_PATH, WelfareCatalog
from server.welfare.service import WelfareService
from server.welfare.tool import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_PARAMETERS,
    format_services,
    run_welfare_tool,
    service_to_dict,
)

__all__ = [
    "SHIPPED_CATALOG_PATH",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "TOOL_PARAMETERS",
    "WelfareCatalog",
    "WelfareService",
    "format_services",
    "run_welfare_tool",
    "service_to_dict",
]
