#!/opt/puppetlabs/puppet/bin/ruby
# frozen_string_literal: true

# forgelike::ensure_line: a Ruby task that supports noop (_noop), like the Forge's
# configuration tasks.
require_relative '../../ruby_task_helper/files/task_helper.rb'

# Adds a line to a file unless it is there; in noop mode changes nothing.
class EnsureLine < TaskHelper
  def task(path:, line:, _noop: false, **_meta)
    present = File.exist?(path) && File.readlines(path, chomp: true).include?(line)
    return { changed: false, noop: _noop, present: true } if present
    return { changed: false, noop: true, would_add: true } if _noop

    File.open(path, 'a') { |f| f.puts(line) }
    { changed: true, noop: false }
  end
end

EnsureLine.run if $PROGRAM_NAME == __FILE__
