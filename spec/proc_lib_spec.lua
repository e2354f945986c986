-- Specs for pogo.proc_lib (start with an init acknowledgement).
local pogo = require "pogo"
local proc_lib = require "pogo.proc_lib"

before_each(function()
  while pogo.receive(0) ~= nil do end
end)

describe("pogo.proc_lib.start", function()
  it("returns the pid once the process acknowledges, passing the arguments", function()
    local pid = proc_lib.start(true, 1000, function(ack, parent, a, b)
      ack(true)
      pogo.send(parent, { a, b })
      pogo.receive()
    end, 1, 2)
    assert.is_true(pogo.is_pid(pid))
    assert.same({ 1, 2 }, pogo.receive(1000))
    assert.same({ pid }, pogo.process_info(pogo.self()).links)
    pogo.unlink(pid)
    pogo.exit(pid, "kill")
  end)

  it("a refusal gives nil and the reason, and never kills the caller", function()
    local caller = pogo.spawn(function(me)
      local pid, err = proc_lib.start(true, 1000, function(ack) ack(false, "no thanks"); error("then dies") end)
      pogo.sleep(5)
      pogo.send(me, { pid, err })
    end, pogo.self())
    local ref = pogo.monitor(caller)
    assert.same({ nil, "no thanks" }, pogo.receive(function(m) return m[1] ~= "DOWN" end, 1000))
    assert.equal("normal", pogo.receive(function(m) return m[2] == ref end, 1000)[4])
  end)

  it("a process that dies before acknowledging gives its exit reason", function()
    local pid, err = proc_lib.start(false, 1000, function() error("init crashed") end)
    assert.is_nil(pid)
    assert.matches("init crashed", err.error)
  end)

  it("gives up after the timeout and kills the process", function()
    local t0 = pogo.now()
    local pid, err = proc_lib.start(true, 20, function(_, parent)
      pogo.send(parent, { "slow", pogo.self() })
      pogo.receive()
    end)
    assert.is_nil(pid)
    assert.matches("^timeout", err)
    assert.is_true(pogo.now() - t0 >= 19)
    local slow = pogo.receive(function(m) return m[1] == "slow" end, 0)[2]
    pogo.sleep(1)
    assert.is_false(pogo.alive(slow))
    assert.is_nil(pogo.receive(function(m) return m[1] == "EXIT" end, 0))
  end)

  it("acting_for names another process the parent of what it starts; links stay with the caller", function()
    local sup = pogo.spawn(function() pogo.receive() end)
    local seen
    local pid = proc_lib.acting_for(sup, proc_lib.start, true, 1000, function(ack, parent)
      seen = { parent, proc_lib.parent() }
      ack(true)
      pogo.receive()
    end)
    assert.same({ sup, sup }, seen)
    assert.same({ pid }, pogo.process_info(pogo.self()).links)
    assert.is_nil(proc_lib.parent()) -- the spec's own process was not started by proc_lib
    -- outside acting_for the caller is the parent again
    local own = proc_lib.start(false, 1000, function(ack, parent) seen = parent; ack(true) end)
    assert.equal(pogo.self(), seen)
    assert.is_true(pogo.is_pid(own))
    pogo.unlink(pid)
    pogo.exit(pid, "kill")
    pogo.exit(sup, "kill")
    assert.has_error(function() proc_lib.acting_for("nobody", print) end,
      "pogo.proc_lib.acting_for: parent must be a pid")
  end)
end)
