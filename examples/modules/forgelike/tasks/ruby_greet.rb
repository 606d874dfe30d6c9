#!/opt/puppetlabs/puppet/bin/ruby
# frozen_string_literal: true

# forgelike::ruby_greet: a Forge-style Ruby task. It has the AIO shebang of Puppet's own
# packages and uses ruby_task_helper's TaskHelper through the metadata "files" (installed
# under _installdir), as Forge tasks do.
require_relative '../../ruby_task_helper/files/task_helper.rb'

# Greets someone; fails with a structured error when asked to.
class RubyGreet < TaskHelper
  def task(name: 'world', fail_with: nil, **meta)
    if fail_with
      raise TaskHelper::Error.new("asked to fail: #{fail_with}", 'forgelike/asked-to-fail', 'reason' => fail_with)
    end

    { greeting: "hello #{name}", ruby: RUBY_VERSION, ruby_bin: RbConfig.ruby, task: meta[:_task],
      installdir: meta[:_installdir] }
  end
end

RubyGreet.run if $PROGRAM_NAME == __FILE__
