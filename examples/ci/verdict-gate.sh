#!/bin/sh
# Ask Verdict until it stops saying hold. Exit codes of `verdict decide`:
#   0 promote, 10 hold, 11 rollback, 12 freeze, 1 error.
# Usage: verdict-gate.sh request.json [attempts] [seconds-between]
# Needs VERDICT_SERVER and (unless the server is loopback without tokens)
# VERDICT_TOKEN, a token with the `decide` role.
set -u
request=$1
attempts=${2:-10}
pause=${3:-60}
i=1
while :; do
  verdict decide --file "$request"
  code=$?
  case $code in
    0)  echo "verdict: promote"; exit 0 ;;
    10) if [ "$i" -ge "$attempts" ]; then
          echo "verdict: still hold after $attempts attempts"; exit 10
        fi
        echo "verdict: hold (attempt $i/$attempts), asking again in ${pause}s"
        i=$((i + 1)); sleep "$pause" ;;
    11) echo "verdict: rollback"; exit 11 ;;
    12) echo "verdict: freeze"; exit 12 ;;
    *)  echo "verdict: error (exit $code)"; exit 1 ;;
  esac
done
