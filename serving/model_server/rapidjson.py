"""JSON read and written byte for byte as TF Serving 2.16.1's REST API does it (RapidJSON 1.1.0).

TF Serving parses request bodies with RapidJSON (util/json_tensor.cc `ParseJson`:
`ParseStream<kParseNanAndInfFlag>` over a UTF-8 MemoryStream) and writes responses and the JSON
values quoted in error messages with RapidJSON's PrettyWriter. What a client sees depends on
RapidJSON's exact rules, so this module follows its reader and writer (include/rapidjson/reader.h,
writer.h, prettywriter.h, internal/dtoa.h, internal/strtod.h at tag v1.1.0) rather than Python's
json module, which differs in every one of these:

- errors are "<RapidJSON message> at offset: <byte offset>" (error/en.h GetParseError_En);
- NaN, Inf, Infinity, -Inf, -Infinity are numbers; a NUL byte ends the document (MemoryStream's
  Peek returns '\\0' at the end); a leading UTF-8 byte-order mark is skipped, byte by byte;
- strings are bytes, not validated as UTF-8 (no kParseValidateEncodingFlag); "\\u" escapes are
  encoded as UTF-8, a lone low surrogate included; control characters must be escaped;
- numbers keep RapidJSON's kinds: an integer literal is an int when it fits 64 bits (signed or
  unsigned), otherwise a double; decimals are computed with RapidJSON's "normal precision"
  arithmetic (StrtodNormalPrecision), which is what TF Serving then casts to float;
- objects keep every member in order, duplicates included (FindMember returns the first).

The reader is iterative, so any nesting depth parses without recursion (RapidJSON recurses, and
a comment in TF Serving's ParseJson notes that deep nesting can overflow its stack).

Values: None, True/False, bytes (strings), int, float, list (arrays) and `Object` (a list of
(name, value) pairs).
"""
import math
import re
from typing import List, Optional, Tuple

# error/en.h GetParseError_En.
DOCUMENT_EMPTY = "The document is empty."
ROOT_NOT_SINGULAR = "The document root must not be followed by other values."
VALUE_INVALID = "Invalid value."
OBJECT_MISS_NAME = "Missing a name for object member."
OBJECT_MISS_COLON = "Missing a colon after a name of object member."
OBJECT_MISS_COMMA = "Missing a comma or '}' after an object member."
ARRAY_MISS_COMMA = "Missing a comma or ']' after an array element."
UNICODE_ESCAPE_INVALID_HEX = "Incorrect hex digit after \\u escape in string."
UNICODE_SURROGATE_INVALID = "The surrogate pair in string is invalid."
ESCAPE_INVALID = "Invalid escape character in string."
MISS_QUOTATION_MARK = "Missing a closing quotation mark in string."
NUMBER_TOO_BIG = "Number too big to be stored in double."
NUMBER_MISS_FRACTION = "Miss fraction part in number."
NUMBER_MISS_EXPONENT = "Miss exponent in number."

FLOAT_MAX = 3.4028234e38  # document.h IsFloat()
# Ours, not RapidJSON's: it has no limit, and TF Serving's recursive parse (and the quoting of a
# document in an error) runs out of stack or memory long before these; here they answer 400.
MAX_DEPTH = 10_000
MAX_QUOTED_BYTES = 1 << 20
_POW10 = [float(f"1e{i}") for i in range(309)]  # internal/pow10.h: the exact double literals
_ESCAPES = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b", ord("f"): b"\f",
            ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t"}
_WHITESPACE = b" \n\r\t"
_NUMBER = re.compile(rb"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?(?![0-9.eE])")
_DIGITS = b"0123456789"


class Object:
    """A JSON object: (name, value) pairs in document order, duplicates kept (not a list, so it
    is never taken for an array)."""

    __slots__ = ("members",)

    def __init__(self, members=None):
        self.members = members if members is not None else []

    def append(self, member) -> None:
        self.members.append(member)

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __reversed__(self):
        return reversed(self.members)

    def __eq__(self, other) -> bool:
        return isinstance(other, Object) and self.members == other.members

    def __repr__(self) -> str:
        return f"Object({self.members!r})"

    def get(self, name: bytes, default=None):
        """The first member with this name (GenericValue::FindMember)."""
        for key, value in self.members:
            if key == name:
                return value
        return default

    def __contains__(self, name) -> bool:
        return any(key == name for key, _ in self.members)

    def keys(self) -> List[bytes]:
        return [key for key, _ in self.members]


class ParseError(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} at offset: {offset}")
        self.message, self.offset = message, offset


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.n = data, len(data)
        self.pos = 0
        for bom in (0xEF, 0xBB, 0xBF):  # EncodedInputStream<UTF8<>, MemoryStream>: each BOM byte alone
            if self.pos < self.n and data[self.pos] == bom:
                self.pos += 1

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < self.n else 0

    def skip_whitespace(self) -> None:
        data, n, pos = self.data, self.n, self.pos
        while pos < n and data[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def consume(self, char: int) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def fail(self, message: str, offset: Optional[int] = None):
        raise ParseError(message, self.pos if offset is None else offset)

    # --- scalars ------------------------------------------------------------------------------------

    def literal(self, word: bytes, value):
        self.pos += 1
        for char in word[1:]:
            if not self.consume(char):
                self.fail(VALUE_INVALID)
        return value

    def hex4(self, escape_offset: int) -> int:
        codepoint = 0
        for _ in range(4):
            char = self.peek()
            codepoint <<= 4
            if 48 <= char <= 57:
                codepoint += char - 48
            elif 65 <= char <= 70:
                codepoint += char - 55
            elif 97 <= char <= 102:
                codepoint += char - 87
            else:
                self.fail(UNICODE_ESCAPE_INVALID_HEX, escape_offset)
            self.pos += 1
        return codepoint

    def member_name(self) -> bytes:
        """An object member's name and its colon, with the whitespace after each (ParseObject)."""
        if self.peek() != ord('"'):
            self.fail(OBJECT_MISS_NAME)
        name = self.string()
        self.skip_whitespace()
        if not self.consume(ord(":")):
            self.fail(OBJECT_MISS_COLON)
        self.skip_whitespace()
        return name

    def string(self) -> bytes:
        """reader.h ParseStringToStream (no encoding validation: bytes are copied)."""
        self.pos += 1  # the opening quote
        data, out = self.data, bytearray()
        while True:
            start = self.pos
            pos = start
            while pos < self.n and data[pos] not in b'"\\' and data[pos] >= 0x20:
                pos += 1
            out += data[start:pos]
            self.pos = pos
            char = self.peek()
            if char == 0x5C:  # backslash
                escape_offset = self.pos
                self.pos += 1
                escaped = self.peek()
                if escaped in _ESCAPES:
                    self.pos += 1
                    out += _ESCAPES[escaped]
                elif escaped == ord("u"):
                    self.pos += 1
                    codepoint = self.hex4(escape_offset)
                    if 0xD800 <= codepoint <= 0xDBFF:
                        if not (self.consume(0x5C) and self.consume(ord("u"))):
                            self.fail(UNICODE_SURROGATE_INVALID, escape_offset)
                        low = self.hex4(escape_offset)
                        if not 0xDC00 <= low <= 0xDFFF:
                            self.fail(UNICODE_SURROGATE_INVALID, escape_offset)
                        codepoint = (((codepoint - 0xD800) << 10) | (low - 0xDC00)) + 0x10000
                    out += chr(codepoint).encode("utf-8", "surrogatepass")
                else:
                    self.fail(ESCAPE_INVALID, escape_offset)
            elif char == 0x22:
                self.pos += 1
                return bytes(out)
            elif char == 0:  # the end of the body, or a NUL byte
                self.fail(MISS_QUOTATION_MARK)
            else:  # another control character
                self.fail(ESCAPE_INVALID)

    def number(self):
        """reader.h ParseNumber with kParseNanAndInfFlag and normal precision. Short numbers take
        a fast path: up to 15 significant digits and a power of ten within 22 are exact in a
        double, so RapidJSON's one multiplication or division is Python's correctly rounded value."""
        start = self.pos
        match = _NUMBER.match(self.data, start)
        if match:
            integer, fraction, exponent = match.group(2), match.group(3), match.group(4)
            if fraction is None and exponent is None:
                value = int(match.group(0))
                if -(1 << 63) <= value < (1 << 64):
                    self.pos = match.end()
                    return value
            else:
                significant = (integer + (fraction or b"")).lstrip(b"0")
                power = (int(exponent) if exponent else 0) - len(fraction or b"")
                if len(significant) <= 15 and -22 <= power <= 22 and len(exponent or b"") < 6:
                    self.pos = match.end()
                    return float(match.group(0))
        return self._number_slowly(start)

    def _is_digit(self) -> bool:
        return 48 <= self.peek() <= 57

    def _take_digit(self) -> int:
        digit = self.data[self.pos] - 48
        self.pos += 1
        return digit

    def _number_slowly(self, start: int):
        """ParseNumber as RapidJSON runs it, digit by digit, in the same double arithmetic."""
        minus = self.consume(ord("-"))
        i = i64 = 0
        use64 = use_double = False
        significant = 0
        d = 0.0
        char = self.peek()
        if char == ord("0"):
            self.pos += 1
        elif 49 <= char <= 57:
            i = self._take_digit()
            limit, last = (214748364, 8) if minus else (429496729, 5)
            while self._is_digit():
                if i >= limit and (i != limit or self.peek() - 48 > last):
                    i64, use64 = i, True
                    break
                i = i * 10 + self._take_digit()
                significant += 1
        elif char in (ord("I"), ord("N")):
            if self.consume(ord("N")):
                if self.consume(ord("a")) and self.consume(ord("N")):
                    return math.nan
                self.fail(VALUE_INVALID)
            self.pos += 1
            if not (self.consume(ord("n")) and self.consume(ord("f"))):
                self.fail(VALUE_INVALID)
            if self.peek() == ord("i"):
                for char in b"inity":
                    if not self.consume(char):
                        self.fail(VALUE_INVALID)
            return -math.inf if minus else math.inf
        else:
            self.fail(VALUE_INVALID)
        if use64:
            limit, last = (0x0CCCCCCCCCCCCCCC, 8) if minus else (0x1999999999999999, 5)
            while self._is_digit():
                if i64 >= limit and (i64 != limit or self.peek() - 48 > last):
                    d, use_double = float(i64), True
                    break
                i64 = i64 * 10 + self._take_digit()
                significant += 1
        if use_double:
            while self._is_digit():
                if d >= 1.7976931348623157e307:
                    self.fail(NUMBER_TOO_BIG, start)
                d = d * 10 + self._take_digit()
        exp_frac = 0
        if self.consume(ord(".")):
            if not self._is_digit():
                self.fail(NUMBER_MISS_FRACTION)
            if not use_double:
                if not use64:
                    i64 = i
                while self._is_digit():
                    if i64 > 0x1FFFFFFFFFFFFF:
                        break
                    i64 = i64 * 10 + self._take_digit()
                    exp_frac -= 1
                    if i64 != 0:
                        significant += 1
                d, use_double = float(i64), True
            while self._is_digit():
                if significant < 17:
                    d = d * 10.0 + self._take_digit()
                    exp_frac -= 1
                    if d > 0.0:
                        significant += 1
                else:
                    self.pos += 1
        exponent = 0
        if self.consume(ord("e")) or self.consume(ord("E")):
            if not use_double:
                d, use_double = float(i64 if use64 else i), True
            exponent_minus = False
            if not self.consume(ord("+")):
                exponent_minus = self.consume(ord("-"))
            if not self._is_digit():
                self.fail(NUMBER_MISS_EXPONENT)
            exponent = self._take_digit()
            if exponent_minus:
                while self._is_digit():
                    exponent = exponent * 10 + self._take_digit()
                    if exponent >= 214748364:
                        while self._is_digit():
                            self.pos += 1
                exponent = -exponent
            else:
                max_exponent = 308 - exp_frac
                while self._is_digit():
                    exponent = exponent * 10 + self._take_digit()
                    if exponent > max_exponent:
                        self.fail(NUMBER_TOO_BIG, start)
        if use_double:
            d = _strtod_normal_precision(d, exponent + exp_frac)
            return -d if minus else d
        value = i64 if use64 else i
        return -value if minus else value

    # --- the document -------------------------------------------------------------------------------

    def document(self):
        """reader.h GenericReader::Parse, iteratively: a stack of open arrays and objects."""
        self.skip_whitespace()
        if self.peek() == 0:
            self.fail(DOCUMENT_EMPTY)
        stack: List[Tuple[object, Optional[bytes]]] = []  # (container, pending member name)
        value = None
        while True:
            # Parse one value (or open a container).
            char = self.peek()
            if char in (ord("{"), ord("[")) and len(stack) >= MAX_DEPTH:
                raise ParseError(f"Nesting deeper than {MAX_DEPTH} levels (movierec serve's limit).", self.pos)
            if char == ord("{"):
                self.pos += 1
                self.skip_whitespace()
                if self.consume(ord("}")):
                    value = Object()
                else:
                    stack.append((Object(), self.member_name()))
                    continue
            elif char == ord("["):
                self.pos += 1
                self.skip_whitespace()
                if self.consume(ord("]")):
                    value = []
                else:
                    stack.append(([], None))
                    continue
            elif char == ord('"'):
                value = self.string()
            elif char == ord("n"):
                value = self.literal(b"null", None)
            elif char == ord("t"):
                value = self.literal(b"true", True)
            elif char == ord("f"):
                value = self.literal(b"false", False)
            else:
                value = self.number()
            # Attach it, closing every container it completes.
            while True:
                if not stack:
                    self.skip_whitespace()
                    if self.peek() != 0:
                        self.fail(ROOT_NOT_SINGULAR)
                    return value
                container, name = stack[-1]
                if isinstance(container, Object):
                    container.append((name, value))
                    self.skip_whitespace()
                    if self.consume(ord(",")):
                        self.skip_whitespace()
                        stack[-1] = (container, self.member_name())
                        break
                    if not self.consume(ord("}")):
                        self.fail(OBJECT_MISS_COMMA)
                else:
                    container.append(value)
                    self.skip_whitespace()
                    if self.consume(ord(",")):
                        self.skip_whitespace()
                        break
                    if not self.consume(ord("]")):
                        self.fail(ARRAY_MISS_COMMA)
                stack.pop()
                value = container


def _strtod_normal_precision(d: float, p: int) -> float:
    """internal/strtod.h StrtodNormalPrecision."""
    if p < -308:
        return _fast_path(_fast_path(d, -308), p + 308)
    return _fast_path(d, p)


def _fast_path(significand: float, exponent: int) -> float:
    if exponent < -308:
        return 0.0
    if exponent >= 0:
        return significand * _POW10[exponent] if exponent <= 308 else significand * math.inf
    return significand / _POW10[-exponent]


def parse(body: bytes):
    """The document a request body holds; ParseError carries RapidJSON's message and offset."""
    return _Reader(body).document()


# --- writing -------------------------------------------------------------------------------------------

def type_name(value) -> str:
    """json_tensor.cc JsonTypeString."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, Object):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, bytes):
        return "String"
    return "Number"


def is_int(value) -> bool:  # GenericValue::IsInt etc.
    return type(value) is int and -(1 << 31) <= value < (1 << 31)


def is_int64(value) -> bool:
    return type(value) is int and -(1 << 63) <= value < (1 << 63)


def is_uint(value) -> bool:
    return type(value) is int and 0 <= value < (1 << 32)


def is_uint64(value) -> bool:
    return type(value) is int and 0 <= value < (1 << 64)


def is_number(value) -> bool:
    return type(value) in (int, float)


_WRITE_ESCAPES = {i: b"\\u%04X" % i for i in range(0x20)}
_WRITE_ESCAPES.update({0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r",
                       0x22: b'\\"', 0x5C: b"\\\\"})


def quote(text: bytes) -> bytes:
    """writer.h WriteString: '"', '\\\\' and control characters escaped, other bytes as they are."""
    if not any(c < 0x20 or c in (0x22, 0x5C) for c in text):
        return b'"' + text + b'"'
    return b'"' + b"".join(_WRITE_ESCAPES.get(c, bytes((c,))) for c in text) + b'"'


def six_digits(value: float) -> str:
    """absl::StrCat of a float or double: SixDigitsToBuffer, the same text as printf's "%g"."""
    return "%g" % value


def write_decimal(value: float, float32: bool) -> bytes:
    """json_tensor.cc WriteDecimal: six significant digits when they read back as the same
    value, else max_digits10 (9 for float, 17 for double); ".0" added to numbers without '.' or
    'e'; NaN, Infinity, -Infinity as RapidJSON writes them."""
    if math.isnan(value):
        return b"NaN"
    if math.isinf(value):
        return b"-Infinity" if value < 0 else b"Infinity"
    text = six_digits(value)
    if float32:
        import numpy as np
        if np.float32(text) != np.float32(value):
            text = "%.9g" % value
    elif float(text) != value:
        text = "%.17g" % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text.encode()


def _grisu_text(value: float) -> bytes:
    """writer.h WriteDouble: internal/dtoa.h's shortest digits (Python's repr has the same digits
    wherever Grisu2 finds the shortest), laid out by dtoa.h Prettify."""
    if value == 0:
        return b"-0.0" if math.copysign(1, value) < 0 else b"0.0"
    sign = b"-" if value < 0 else b""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, decimals = mantissa.partition(".")
    digits = (whole + decimals).lstrip("0")
    k = (int(exponent) if exponent else 0) - len(decimals)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits, length = stripped, len(stripped)
    kk = length + k
    if 0 <= k and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif kk < -324:
        text = "0.0"
    elif length == 1:
        text = digits + "e" + str(kk - 1)
    else:
        text = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return sign + text.encode()


class PrettyWriter:
    """prettywriter.h: 4-space indentation, kFormatSingleLineArray as a switch."""

    def __init__(self, limit: int = 0):
        self.out = bytearray()
        self.levels: List[list] = []  # [in_array, value_count]
        self.single_line = False
        self.limit = limit  # value() stops past this many bytes (0: none)

    def _prefix(self) -> None:
        if not self.levels:
            return
        level = self.levels[-1]
        out = self.out
        if level[0]:
            if level[1] > 0:
                out += b", " if self.single_line else b","
            if not self.single_line:
                out += b"\n" + b" " * (4 * len(self.levels))
        else:
            if level[1] > 0:
                out += b",\n" if level[1] % 2 == 0 else b": "
            else:
                out += b"\n"
            if level[1] % 2 == 0:
                out += b" " * (4 * len(self.levels))
        level[1] += 1

    def raw(self, text: bytes) -> None:
        self._prefix()
        self.out += text

    def string(self, text: bytes) -> None:
        self.raw(quote(text))

    key = string

    def start_object(self) -> None:
        self.raw(b"{")
        self.levels.append([False, 0])

    def end_object(self) -> None:
        empty = self.levels.pop()[1] == 0
        if not empty:
            self.out += b"\n" + b" " * (4 * len(self.levels))
        self.out += b"}"

    def start_array(self) -> None:
        self.raw(b"[")
        self.levels.append([True, 0])

    def end_array(self) -> None:
        empty = self.levels.pop()[1] == 0
        if not empty and not self.single_line:
            self.out += b"\n" + b" " * (4 * len(self.levels))
        self.out += b"]"

    def value(self, value) -> bool:
        """GenericValue::Accept, iteratively; False where RapidJSON's writer stops (a NaN or an
        infinity: WriteDouble refuses them without kWriteNanAndInfFlag)."""
        todo = [("value", value)]
        while todo:
            if self.limit and len(self.out) > self.limit:
                self.out[self.limit:] = b"..."
                return False
            kind, item = todo.pop()
            if kind == "end_object":
                self.end_object()
            elif kind == "end_array":
                self.end_array()
            elif kind == "key":
                self.key(item)
            elif isinstance(item, Object):
                self.start_object()
                todo.append(("end_object", None))
                for name, member in reversed(item):
                    todo.append(("value", member))
                    todo.append(("key", name))
            elif isinstance(item, list):
                self.start_array()
                todo.append(("end_array", None))
                todo.extend(("value", element) for element in reversed(item))
            elif item is None:
                self.raw(b"null")
            elif item is True:
                self.raw(b"true")
            elif item is False:
                self.raw(b"false")
            elif isinstance(item, bytes):
                self.string(item)
            elif type(item) is int:
                self.raw(str(item).encode())
            elif math.isnan(item) or math.isinf(item):
                self._prefix()
                return False
            else:
                self.raw(_grisu_text(item))
        return True

    def text(self) -> bytes:
        return bytes(self.out)


def value_text(value) -> str:
    """json_tensor.cc JsonValueToString: a double within float range as WriteDecimal of the
    float, anything else through PrettyWriter (cut short where RapidJSON's writer stops, and past
    MAX_QUOTED_BYTES with "...")."""
    if type(value) is float and -FLOAT_MAX <= value <= FLOAT_MAX:
        import numpy as np
        return write_decimal(float(np.float32(value)), float32=True).decode("utf-8", "replace")
    writer = PrettyWriter(MAX_QUOTED_BYTES)
    writer.value(value)
    return writer.text().decode("utf-8", "replace")
