# RFC 8785 (JCS) with jq: `jq -S -c` prints the canonical form of a document only where jq's output and
# JCS agree. `jcs_problems` lists, for the document given, everything that breaks that agreement; `jcs_checked`
# passes the document through unchanged, or stops with an error naming the first problems. A script that
# signs (or verifies) `jq -S -c` output must pass it through `jcs_checked` first: see docs/host-protocol.md,
# "Canonical form with jq".
#
# Where jq and JCS differ, and why each rule below exists:
#   numbers  jq 1.6 prints 1e-05, 1e+16, 1e-07 and -0 where JCS prints 0.00001, 10000000000000000, 1e-7 and 0;
#            jq 1.7 keeps literals as written (1.0, 1e2, 0.10, 12345678901234567890). Every jq and JCS print
#            the same only for plain integers up to 2^53 - 1 in magnitude (exact in a double), and for plain
#            decimals with no trailing fractional zero, at most 15 significant digits and a magnitude of at
#            least 1e-6 (such a decimal is the shortest form of its double, which is what JCS prints).
#   strings  jq escapes U+007F as \u007f; JCS writes it as is.
#   keys     jq -S sorts by code point, JCS by UTF-16 code unit: they differ only when a key holds a character
#            above U+FFFF, so such keys are refused.
#   lone surrogates are not I-JSON (JCS requires I-JSON) and jq has already replaced them by U+FFFD: the
#            document must not contain any; this cannot be checked after jq has read it.

def _jcs_plain_number:
  tostring as $text
  | (if . < 0 then -. else . end) as $magnitude
  | ($text | test("^-?(0|[1-9][0-9]*)(\\.[0-9]*[1-9])?$"))
    and $text != "-0"
    and if ($text | contains(".")) then
          ($text | gsub("[-.]"; "") | sub("^0+"; "") | length) <= 15 and $magnitude >= 0.000001
        else
          $magnitude <= 9007199254740991
        end;

def _jcs_where($path): if ($path | length) == 0 then "(root)" else ($path | map(tostring) | join(".")) end;

def jcs_problems:
  [ (paths(type == "number") as $p
      | getpath($p)
      | select(_jcs_plain_number | not)
      | "number \(tostring) at \(_jcs_where($p)): jq and RFC 8785 may print it differently"),
    (paths(type == "string") as $p
      | getpath($p)
      | select(test("\u007f"))
      | "string at \(_jcs_where($p)) contains U+007F, which jq escapes and RFC 8785 does not"),
    (paths as $p
      | $p[-1]?
      | strings
      | select(explode | any(. > 65535))
      | "key \(tojson) holds a character above U+FFFF: jq -S orders it differently from RFC 8785")
  ];

def jcs_checked:
  jcs_problems as $problems
  | if ($problems | length) == 0 then .
    else error("not canonicalisable with jq: " + ($problems[:3] | join("; ")))
    end;
