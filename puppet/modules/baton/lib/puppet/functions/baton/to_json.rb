# frozen_string_literal: true

require 'json'

# @summary Renders data as indented JSON with a final newline: the files of baton::agent.
#
# Hashes keep the order they were written in, so the same data always gives the same text
# (and a second Puppet run finds nothing to change). Sensitive values must be unwrapped first.
Puppet::Functions.create_function(:'baton::to_json') do
  # @param data the data to render
  # @return [String] the JSON text
  dispatch :to_json do
    param 'Data', :data
    return_type 'String'
  end

  def to_json(data)
    "#{JSON.pretty_generate(data)}\n"
  end
end
