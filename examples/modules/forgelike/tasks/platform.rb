#!/opt/puppetlabs/puppet/bin/ruby
# frozen_string_literal: true

# forgelike::platform, puppet-agent implementation: loads Puppet's own Ruby library, as the
# Forge's puppet-agent implementations do, so it runs only on the Ruby Puppet runs on.
require_relative '../../ruby_task_helper/files/task_helper.rb'
require 'puppet'

# Reports the implementation and the Puppet it loaded.
class Platform < TaskHelper
  def task(**_params)
    { implementation: 'puppet-agent', puppet_version: Puppet.version, ruby: RbConfig.ruby }
  end
end

Platform.run if $PROGRAM_NAME == __FILE__
