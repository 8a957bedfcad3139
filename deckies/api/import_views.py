"""``POST /api/v1/deckies/import/``: import a fleet from DECNET's INI format (operator only).

The body is either JSON ``{"ini": "...", "replace": false, "dry_run": false}`` or the INI itself as
``text/plain`` (then ``?replace=true`` / ``?dry_run=true``). Answers 200 with the plan for a dry run and 201 with
the applied plan otherwise; 400 (``invalid_ini``, every problem with its line) on bad input, 409
(``ini_conflict``) on collisions, 413 beyond 512 KiB. Nothing is deployed: ``POST /deckies/deploy/`` or the
per-decky ``deploy`` action brings the imported deckies up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deckies.fleet_import import fleet_import
from deckies.ini import MAX_INI_BYTES, IniTooLargeError, check_size, decode_ini

#: Largest request body: the INI limit plus room for JSON escaping.
MAX_BODY_BYTES = 2 * MAX_INI_BYTES + 4096


class PlainTextParser(BaseParser):
    """``text/plain`` bodies: UTF-8 text (a BOM is allowed), at most :data:`MAX_INI_BYTES`, as ``{"ini": text}``."""

    media_type = "text/plain"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        data = stream.read(MAX_INI_BYTES + 1) if stream is not None else b""
        return {"ini": decode_ini(data, "request body")}


class FleetImportInputSerializer(serializers.Serializer[Any]):
    """The JSON body of an import."""

    ini = serializers.CharField(trim_whitespace=False, help_text="The INI text (at most 512 KiB).")
    replace = serializers.BooleanField(
        default=False, help_text="Make the fleet exactly this file (deckies not in it are deleted if undeployed)."
    )
    dry_run = serializers.BooleanField(default=False, help_text="Return the plan; write nothing.")


class FleetImportOptionsSerializer(serializers.Serializer[Any]):
    """The query options of a ``text/plain`` import."""

    replace = serializers.BooleanField(default=False)
    dry_run = serializers.BooleanField(default=False)


class FleetImportView(APIView):
    """Plan and apply a fleet INI in one transaction."""

    parser_classes = [JSONParser, PlainTextParser]

    @extend_schema(
        operation_id="deckies_import",
        summary="Import deckies from an INI file",
        request={"application/json": FleetImportInputSerializer, "text/plain": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter("replace", bool, description="text/plain bodies only"),
            OpenApiParameter("dry_run", bool, description="text/plain bodies only"),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Dry run: the plan; nothing was written."),
            201: OpenApiResponse(OpenApiTypes.OBJECT, description="The applied plan."),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid INI; `issues` lists each problem's line."),
            409: OpenApiResponse(OpenApiTypes.OBJECT, description="Names or addresses collide; `issues` has lines."),
            413: OpenApiResponse(OpenApiTypes.OBJECT, description="The INI exceeds 512 KiB."),
        },
        examples=[
            OpenApiExample(
                "Two web servers",
                value={"ini": "[web]\narchetype = web-server\namount = 2\n", "replace": False, "dry_run": True},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise IniTooLargeError(f"the request body is {length} bytes; the INI limit is {MAX_INI_BYTES} bytes")
        body = FleetImportInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        text = body.validated_data["ini"]
        options = body.validated_data
        if request.content_type.startswith("text/plain"):
            query = FleetImportOptionsSerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
            options = query.validated_data
        replace, dry_run = options["replace"], options["dry_run"]
        check_size(text)
        plan = fleet_import(
            text=text,
            replace=replace,
            dry_run=dry_run,
            source="request body",
            actor=str(request.user.get_username()),
        )
        return Response(plan.as_dict(), status=status.HTTP_201_CREATED if plan.applied else status.HTTP_200_OK)
