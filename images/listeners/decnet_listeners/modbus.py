"""Modbus/TCP (502) for the conpot service: a Siemens S7-1200-style PLC with a small, writable register map.

Reads of coils, discrete inputs, holding and input registers return plausible process values; writes are
applied and logged; Read Device Identification (43/14) and Report Server ID (17) describe the PLC; anything
else raises the exception a real device would. Malformed framing (e.g. an HTTP request) gets the
illegal-function exception devices send before hanging up.
"""

from __future__ import annotations

import math
import struct
import threading
import time

from .config import Settings
from .server import Closed, Session

COILS = 128
REGISTERS = 200
MAX_REQUESTS = 1000
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
_FUNCTIONS = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
    5: "write single coil",
    6: "write single register",
    15: "write multiple coils",
    16: "write multiple registers",
    17: "report server id",
    43: "read device identification",
}
#: Holding registers 0-9: setpoints and configuration of a small water-treatment skid.
_HOLDING = [215, 1013, 350, 1450, 75, 12, 600, 45, 3, 1]


class Plc:
    """The device's memory and identity, shared by all connections."""

    def __init__(self, settings: Settings) -> None:
        self.identity = [
            settings.text("vendor", "Siemens AG"),
            settings.text("product_code", "6ES7 215-1AG40-0XB0"),
            settings.text("revision", "V4.4"),
            settings.text("vendor_url", "http://www.siemens.com/automation"),
            settings.text("product_name", "SIMATIC S7-1200"),
            settings.text("model_name", "CPU 1215C DC/DC/DC"),
            settings.text("application", settings.short_hostname),
        ]
        self.coils = [i % 3 == 0 for i in range(COILS)]
        self.holding = [_HOLDING[i] if i < len(_HOLDING) else (i * 37 + 100) % 1000 for i in range(REGISTERS)]
        self.lock = threading.Lock()

    def input_register(self, address: int) -> int:
        """Sensor readings that drift slowly, like a live process."""
        wave = math.sin(time.time() / 60 + address)
        return max(0, int(self.holding[address] + 5 * wave)) & 0xFFFF

    def execute(self, function: int, data: bytes) -> tuple[bytes, dict[str, object]]:
        """The response PDU (after the function code) and log details; raises ``ValueError(code)`` for exceptions."""
        if function in (1, 2, 3, 4):
            address, quantity = struct.unpack("!HH", data[:4])
            limit, table = (2000, COILS) if function <= 2 else (125, REGISTERS)
            if not 1 <= quantity <= limit:
                raise ValueError(ILLEGAL_VALUE)
            if address + quantity > table:
                raise ValueError(ILLEGAL_ADDRESS)
            if function <= 2:
                bits = (
                    self.coils[address : address + quantity]
                    if function == 1
                    else [(address + i) % 5 == 0 for i in range(quantity)]
                )
                packed = bytes(
                    sum(1 << j for j, bit in enumerate(bits[i : i + 8]) if bit) for i in range(0, quantity, 8)
                )
                return bytes([len(packed)]) + packed, {"address": address, "quantity": quantity}
            values = [
                self.holding[a] if function == 3 else self.input_register(a) for a in range(address, address + quantity)
            ]
            return bytes([2 * quantity]) + struct.pack(f"!{quantity}H", *values), {
                "address": address,
                "quantity": quantity,
            }
        if function in (5, 6):
            address, value = struct.unpack("!HH", data[:4])
            if address >= (COILS if function == 5 else REGISTERS):
                raise ValueError(ILLEGAL_ADDRESS)
            if function == 5 and value not in (0x0000, 0xFF00):
                raise ValueError(ILLEGAL_VALUE)
            with self.lock:
                if function == 5:
                    self.coils[address] = value == 0xFF00
                else:
                    self.holding[address] = value
            return data[:4], {"address": address, "value": value}
        if function in (15, 16):
            address, quantity, count = struct.unpack("!HHB", data[:5])
            table = COILS if function == 15 else REGISTERS
            if address + quantity > table or quantity == 0:
                raise ValueError(ILLEGAL_ADDRESS)
            payload = data[5 : 5 + count]
            with self.lock:
                if function == 16:
                    values = list(struct.unpack(f"!{quantity}H", payload[: 2 * quantity]))
                    self.holding[address : address + quantity] = values
                else:
                    values = [(payload[i // 8] >> (i % 8)) & 1 for i in range(quantity)]
                    self.coils[address : address + quantity] = [bool(v) for v in values]
            return struct.pack("!HH", address, quantity), {"address": address, "quantity": quantity, "values": values}
        if function == 17:
            text = f"{self.identity[4]} {self.identity[5]}".encode()
            return bytes([len(text) + 2, 0x01, 0xFF]) + text, {}
        if function == 43 and data[:1] == b"\x0e":
            return self.device_identification(data[1], data[2] if len(data) > 2 else 0)
        raise ValueError(ILLEGAL_FUNCTION)

    def device_identification(self, code: int, object_id: int) -> tuple[bytes, dict[str, object]]:
        """Read Device Identification: basic (1), regular/extended (2, 3) or one object (4)."""
        if code == 4:
            if object_id >= len(self.identity):
                raise ValueError(ILLEGAL_ADDRESS)
            ids = [object_id]
        elif code in (1, 2, 3):
            ids = list(range(3)) if code == 1 else list(range(len(self.identity)))
        else:
            raise ValueError(ILLEGAL_VALUE)
        objects = b"".join(bytes([i, len(self.identity[i].encode())]) + self.identity[i].encode() for i in ids)
        return bytes([0x0E, code, 0x83, 0x00, 0x00, len(ids)]) + objects, {"code": code, "object_id": object_id}


def handle(session: Session, plc: Plc) -> None:
    """Serve Modbus/TCP requests on one connection."""
    for _ in range(MAX_REQUESTS):
        header = session.recv_exact(8)
        transaction, protocol, length, unit, function = struct.unpack("!HHHBB", header)
        if protocol != 0 or not 2 <= length <= 254:
            session.emit("command", command="malformed", raw=header.hex())
            session.send(header[:4] + struct.pack("!HBBB", 3, unit, (function | 0x80) & 0xFF, ILLEGAL_FUNCTION))
            raise Closed
        data = session.recv_exact(length - 2)
        name = _FUNCTIONS.get(function, f"function {function}")
        try:
            body, details = plc.execute(function, data)
        except (ValueError, struct.error, IndexError) as exc:
            code = (
                exc.args[0]
                if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], int)
                else ILLEGAL_VALUE
            )
            session.emit("command", command=name, unit=unit, function=function, exception=code)
            session.send(struct.pack("!HHHBBB", transaction, 0, 3, unit, function | 0x80, code))
            continue
        session.emit("command", command=name, unit=unit, function=function, **details)
        session.send(struct.pack("!HHHBB", transaction, 0, len(body) + 2, unit, function) + body)
