# @summary Installs, configures and runs Baton's node agent (the baton-agent package).
#
# Writes the agent's config (`config_file`, JSON, mode 0600) and its credential
# (`credential_file`, mode 0600), and keeps the baton-agent service running.
#
# The credential is written only when it is missing (`replace => false`): on its first start
# the agent exchanges the one-time enrolment token in it for its own key pair and writes the
# private key back into that file, so Puppet must not put the used-up token back. To enrol a
# node again (after `baton node revoke` and `baton node add`), delete the file and let Puppet
# write the new token.
#
# @example A node enrolling with its one-time token (from `baton node add` or the bulk
#   enrolment API), the server's self-signed certificate pinned
#   class { 'baton::agent':
#     server           => 'wss://baton.example.com:8143/pcp',
#     enrollment_token => Sensitive(lookup('baton::token')),
#     tls_fingerprint  => '3f2a...64 hex digits',
#     interpreters     => { '.rb' => ['/usr/bin/ruby', '-r', 'puppet'], 'py' => '/usr/bin/python3' },
#   }
#
# @param server
#   The orchestrator's WebSocket URL (wss://host:8143/pcp for `baton serve`, the stack's
#   WebSocketUrl on AWS). Optional only with `credential`, which names it.
# @param node_name
#   The node's name at the orchestrator, as given to `baton node add`.
# @param enrollment_token
#   The node's one-time enrolment token. Give this or `credential`.
# @param credential
#   A whole credential file as `baton node add --out FILE` writes it (JSON). Give this or
#   `enrollment_token`.
# @param api
#   The HTTP API's base URL where the agent enrols, when it is not the server's host (AWS).
# @param tls_fingerprint
#   SHA-256 fingerprint (hex) of the server's TLS certificate, pinned by the agent.
# @param ca_file
#   PEM file of CA certificates to verify the server with, instead of a fingerprint.
# @param insecure
#   Allow a ws:// (unencrypted) server URL on a host that is not loopback.
# @param interpreters
#   Task interpreters by file extension (Bolt's `interpreters`): keys with or without the
#   dot, values an interpreter path or an array of the path and its arguments, e.g.
#   `{ '.rb' => ['/usr/bin/ruby', '-r', 'puppet'], 'py' => '/usr/bin/python3' }` (a task
#   file `x.rb` then starts as `/usr/bin/ruby -r puppet x.rb`, never through a shell).
#   Each replaces the detected default for its extension; empty: the detected defaults.
# @param features
#   Task features to advertise instead of the detected ones (shell, powershell, puppet-agent).
# @param puppet_mode
#   How the agent runs Puppet on demand: `agent` (against a puppetserver) or `apply`.
# @param puppet_manifest
#   The manifest of `apply` mode.
# @param puppet_modulepath
#   The modulepath of `apply` mode.
# @param puppet_args
#   Extra puppet settings for every run, e.g. `['--confdir', '/etc/x']`.
# @param log_level
#   The agent's log level.
# @param package_name
#   The agent's package.
# @param package_ensure
#   `installed`, `latest` or a version.
# @param package_source
#   A local .deb or .rpm file to install from (dpkg or rpm provider); unset: the system's
#   package repositories.
# @param manage_service
#   Whether to manage the baton-agent service (false where systemd does not run).
# @param service_ensure
#   The service's state.
# @param service_enable
#   Whether the service starts at boot.
# @param config_file
#   The agent's config; the unit starts `baton-agent --config /etc/baton/agent.json`.
# @param credential_file
#   The agent's credential. The packaged unit starts only once /etc/baton/agent.cred exists
#   (ConditionPathExists): another path needs a matching drop-in.
# @param cache_dir
#   The task file cache.
# @param spool_dir
#   The result spool.
class baton::agent (
  Optional[Pattern[/\Awss?:\/\/[^\s]+\z/]] $server = undef,
  String[1] $node_name = $trusted['certname'],
  Optional[Variant[String[1], Sensitive[String[1]]]] $enrollment_token = undef,
  Optional[Variant[String[1], Sensitive[String[1]]]] $credential = undef,
  Optional[Pattern[/\Ahttps?:\/\/[^\s]+\z/]] $api = undef,
  Optional[Pattern[/\A(?:[0-9A-Fa-f]{2}:?){32}\z/]] $tls_fingerprint = undef,
  Optional[Pattern[/\A\//]] $ca_file = undef,
  Boolean $insecure = false,
  Hash[Pattern[/\A\.?[a-zA-Z0-9]+\z/], Variant[String[1], Array[String[1], 1]]] $interpreters = {},
  Optional[Array[Enum['shell', 'powershell', 'puppet-agent']]] $features = undef,
  Optional[Enum['agent', 'apply']] $puppet_mode = undef,
  Optional[String[1]] $puppet_manifest = undef,
  Optional[String[1]] $puppet_modulepath = undef,
  Array[String[1]] $puppet_args = [],
  Enum['debug', 'info', 'warn', 'error'] $log_level = 'info',
  String[1] $package_name = 'baton-agent',
  String[1] $package_ensure = 'installed',
  Optional[Pattern[/\A\//]] $package_source = undef,
  Boolean $manage_service = true,
  Enum['running', 'stopped'] $service_ensure = 'running',
  Boolean $service_enable = true,
  Pattern[/\A\//] $config_file = '/etc/baton/agent.json',
  Pattern[/\A\//] $credential_file = '/etc/baton/agent.cred',
  Pattern[/\A\//] $cache_dir = '/var/cache/baton-agent/tasks',
  Pattern[/\A\//] $spool_dir = '/var/lib/baton-agent/spool',
) {
  if ($enrollment_token =~ Undef) == ($credential =~ Undef) {
    fail('baton::agent: give exactly one of enrollment_token and credential')
  }
  if $server =~ Undef and $credential =~ Undef {
    fail('baton::agent: server is required with enrollment_token')
  }
  if $puppet_mode == 'apply' and $puppet_manifest =~ Undef {
    fail("baton::agent: puppet_mode 'apply' needs puppet_manifest")
  }
  if $puppet_mode != 'apply' and ($puppet_manifest !~ Undef or $puppet_modulepath !~ Undef) {
    fail("baton::agent: puppet_manifest and puppet_modulepath apply only to puppet_mode 'apply'")
  }

  # --- package ---------------------------------------------------------------------------
  if $package_source =~ Undef {
    package { $package_name:
      ensure => $package_ensure,
    }
  } else {
    $provider = $facts['os']['family'] ? {
      /\A(?:RedHat|Suse)\z/ => 'rpm',
      default               => 'dpkg',
    }
    package { $package_name:
      ensure   => $package_ensure,
      source   => $package_source,
      provider => $provider,
    }
  }

  # --- config ----------------------------------------------------------------------------
  # Only the settings given: the agent's defaults stay the agent's.
  $puppet = {
    'mode'       => $puppet_mode,
    'manifest'   => $puppet_manifest,
    'modulepath' => $puppet_modulepath,
    'args'       => empty($puppet_args) ? { true => undef, default => $puppet_args },
  }.filter |$k, $v| { $v !~ Undef }
  $config = {
    'server'          => $server,
    'credential'      => $credential_file,
    'tls_fingerprint' => $tls_fingerprint,
    'ca_file'         => $ca_file,
    'insecure'        => $insecure ? { true => true, default => undef },
    'cache_dir'       => $cache_dir,
    'spool_dir'       => $spool_dir,
    'log_level'       => $log_level,
    'interpreters'    => empty($interpreters) ? { true => undef, default => $interpreters },
    'features'        => $features,
    'puppet'          => empty($puppet) ? { true => undef, default => $puppet },
  }.filter |$k, $v| { $v !~ Undef }

  file { $config_file:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0600',
    content => baton::to_json($config),
    require => Package[$package_name],
  }

  # --- credential ------------------------------------------------------------------------
  if $credential =~ Undef {
    $token = $enrollment_token ? {
      Sensitive => $enrollment_token.unwrap,
      default   => $enrollment_token,
    }
    $cred_text = baton::to_json({
        'name'             => $node_name,
        'enrollment_token' => $token,
        'server'           => $server,
        'api'              => $api,
        'tls_fingerprint'  => $tls_fingerprint,
    }.filter |$k, $v| { $v !~ Undef })
  } else {
    $cred_text = $credential ? {
      Sensitive => $credential.unwrap,
      default   => $credential,
    }
  }
  file { $credential_file:
    ensure    => file,
    owner     => 'root',
    group     => 'root',
    mode      => '0600',
    content   => Sensitive($cred_text),
    replace   => false, # the agent replaces the token with its own key
    show_diff => false,
    require   => Package[$package_name],
  }

  # --- service ---------------------------------------------------------------------------
  if $manage_service {
    service { 'baton-agent':
      ensure    => $service_ensure,
      enable    => $service_enable,
      subscribe => [Package[$package_name], File[$config_file], File[$credential_file]],
    }
  }
}
