# Sourced by scripts/get-python and scripts/get-aarch64: Debian packages fetched with an apt
# configuration of their own, so the system's apt sources and state are never touched.

# The apt sources this machine uses (sources.list and deb822), comments removed.
apt_sources() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | sed -e 's/#.*//' || true
}

# apt_mirror NAME: the first `https?://.../NAME` archive of those sources (debian,
# debian-security), or "" when there is none.
apt_mirror() {
  grep -Eo "https?://[^][ ]+/$1/?( |\$)" <<<"$(apt_sources)" | sed -e 's/ *$//' -e 's:/*$::' \
    | head -n 1 || true
}

# private_apt DIR ARCH SOURCES-LINE...: an apt configuration of its own in DIR for packages of
# ARCH, its lists updated; sets `aptopts` for the apt-get calls that follow.
private_apt() {
  local dir=$1 arch=$2
  shift 2
  mkdir -p "$dir"/etc/sources.list.d "$dir"/etc/preferences.d "$dir"/state/lists/partial \
           "$dir"/cache/archives/partial
  : >"$dir/state/status"
  printf '%s\n' "$@" >"$dir/etc/sources.list"
  aptopts=(
    -o "Dir::Etc::SourceList=$dir/etc/sources.list" -o "Dir::Etc::SourceParts=$dir/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$dir/etc/preferences" -o "Dir::Etc::PreferencesParts=$dir/etc/preferences.d"
    -o "Dir::State=$dir/state" -o "Dir::State::status=$dir/state/status" -o "Dir::Cache=$dir/cache"
    -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" -o Acquire::Languages=none
    -o APT::Sandbox::User=root -o Debug::NoLocking=1 -o Acquire::Retries=2
    -o Acquire::http::Timeout=30 -o Acquire::https::Timeout=30 -q
  )
  apt-get "${aptopts[@]}" --error-on=any update
}
