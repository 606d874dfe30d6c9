# A node of a Puppet-managed fleet joins Baton: its one-time enrolment token comes from Hiera
# (eyaml), filled from Baton's bulk enrolment API; the server's self-signed certificate is
# pinned. `puppet apply --noop examples/agent.pp` shows what it would do.
class { 'baton::agent':
  server           => 'wss://baton.example.com:8143/pcp',
  enrollment_token => Sensitive('one-time-token-from-baton'),
  tls_fingerprint  => '0000000000000000000000000000000000000000000000000000000000000000',
  interpreters     => { '.rb' => ['/usr/bin/ruby', '-r', 'puppet'], 'py' => '/usr/bin/python3' },
  puppet_mode      => 'agent',
}
