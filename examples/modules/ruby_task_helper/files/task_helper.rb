# frozen_string_literal: true

# A small TaskHelper in the shape of the Forge's puppetlabs-ruby_task_helper
# (files/task_helper.rb), written for Baton's tests: a task subclasses TaskHelper, defines
# task(**params) returning a Hash, and calls run. Parameters come as JSON on stdin (keys
# symbolized, so `_task`, `_installdir` and `_noop` arrive as :_task, ...); the Hash is
# printed as JSON. A TaskHelper::Error becomes {"_error": {kind, msg, details}} and exit 1;
# any other exception the same with kind "puppetlabs.tasks/task-error".
require 'json'

class TaskHelper
  # Error is what a task raises to fail with a structured error.
  class Error < RuntimeError
    attr_reader :kind, :details

    def initialize(msg, kind, details = nil)
      super(msg)
      @kind = kind
      @details = details || {}
    end

    def to_h
      { 'kind' => kind, 'msg' => message, 'details' => details }
    end
  end

  def task(**_params)
    raise Error.new('TaskHelper#task must be implemented by the task', 'tasks/not-implemented')
  end

  def self.run
    input = $stdin.read
    params = input.strip.empty? ? {} : JSON.parse(input, symbolize_names: true)
    result = new.task(**params)
    puts(result.is_a?(Hash) ? result.to_json : { '_output' => result.to_s }.to_json)
  rescue TaskHelper::Error => e
    puts({ '_error' => e.to_h }.to_json)
    exit 1
  rescue StandardError => e
    details = { 'class' => e.class.to_s }
    details['backtrace'] = e.backtrace.first(5) if e.backtrace
    puts({ '_error' => { 'kind' => 'puppetlabs.tasks/task-error', 'msg' => e.message, 'details' => details } }.to_json)
    exit 1
  end
end
