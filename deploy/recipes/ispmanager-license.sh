#!/bin/sh
# metadata_begin
# recipe: ISPmanager 6 (license by license-facade)
# tags: almalinux, rocky, centos, debian, ubuntu
# revision: 1
# description: Waits until this server's ISPmanager 6 license is active, then installs the panel of that license. Never installs on a trial.
# metadata_end
#
# Run by VMmanager 6 / DCImanager 6 after the OS is installed (Linux, 3-hour limit).
# The platform replaces ($LF_GUEST_URL) with a global variable the administrator
# defines: the watcher's guest listener, e.g. http://watcher.example.net:9188.
#
# The guest holds no credential. It asks the watcher's /guest/license, which answers
# only about the address the request comes from: the state and panel of the license
# bound to it. The panel's own installer asks ISPsystem for the license of the public
# IP and falls back to a trial when there is none yet; waiting here for ACTIVE first
# means the installer finds the paid license.
#
# Outside a platform (tests, a manual run) the environment gives the same settings:
# LF_GUEST_URL, LF_WAIT_SECS (default 7200), LF_POLL_SECS (default 20), LF_INSTALLER
# (a command to run instead of downloading install.sh), LF_LICCTL (default
# /usr/local/mgr5/sbin/licctl), LF_CURL_OPTS (extra curl options, e.g. a proxy).
set -u

GUEST_URL='($LF_GUEST_URL)'
case "$GUEST_URL" in
    "("*) GUEST_URL="${LF_GUEST_URL:-}" ;;
esac
if [ -z "$GUEST_URL" ]; then
    echo "license recipe: LF_GUEST_URL is not set (define it as a platform variable)" >&2
    exit 2
fi
WAIT_SECS="${LF_WAIT_SECS:-7200}"
POLL_SECS="${LF_POLL_SECS:-20}"
LICCTL="${LF_LICCTL:-/usr/local/mgr5/sbin/licctl}"

# One answer: {"ip": "...", "state": "ACTIVE", "panel": "ISPmanager 6 Pro"}.
field() {
    sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

waited=0
state=""
panel=""
while :; do
    # shellcheck disable=SC2086 # LF_CURL_OPTS is a list of options on purpose.
    answer=$(curl -sS --max-time 15 ${LF_CURL_OPTS:-} "$GUEST_URL/guest/license" 2>/dev/null || true)
    state=$(printf '%s' "$answer" | field state)
    panel=$(printf '%s' "$answer" | field panel)
    [ "$state" = "ACTIVE" ] && break
    if [ "$waited" -ge "$WAIT_SECS" ]; then
        echo "license recipe: no active license for this server after ${WAIT_SECS}s (last state: ${state:-no answer}); not installing, so that no trial is taken" >&2
        exit 1
    fi
    sleep "$POLL_SECS"
    waited=$((waited + POLL_SECS))
done

case "$panel" in
    "ISPmanager 6 Lite") package=ispmanager-lite ;;
    "ISPmanager 6 Pro") package=ispmanager-pro ;;
    "ISPmanager 6 Host") package=ispmanager-host ;;
    "ISPmanager 6 Business") package=ispmanager-business ;;
    *)
        echo "license recipe: the license is for \"$panel\", which this recipe does not install" >&2
        exit 1
        ;;
esac
echo "license recipe: license active for $panel; installing $package"

if [ -n "${LF_INSTALLER:-}" ]; then
    installer="$LF_INSTALLER"
else
    installer=/tmp/ispmanager-install.sh
    curl -fsSL --retry 3 -o "$installer" https://download.ispmanager.com/install.sh || exit 1
    installer="sh $installer"
fi
# The options of ISPsystem's own ISPmanager recipe (platforms.md §4).
$installer --silent --ignore-hostname --ispmgr6 "$package" || exit 1

# Fetch the license file now rather than at the panel's next check (the same command
# picks up a later move or tariff change: see docs/integrations.md).
if [ -x "$LICCTL" ] || [ -n "${LF_LICCTL:-}" ]; then
    $LICCTL fetch ispmgr
fi
