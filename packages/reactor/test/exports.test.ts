import { expect } from 'chai';

// The public surface, entry by entry: a change here is an API change and must be deliberate.
const SURFACE: Record<string, string[]> = {
  '@storkit/reactor': [
    'APP_THREAD',
    'App',
    'ChannelIter',
    'ControlError',
    'IoChannel',
    'MSG_BATCH',
    'ManualClock',
    'OffloadPool',
    'POLLER_BUSY',
    'POLLER_IDLE',
    'Poller',
    'ReactorError',
    'SockConn',
    'SockHost',
    'Thread',
    'appReport',
    'appStop',
    'codec',
    'createThread',
    'createThreadOn',
    'declareControl',
    'defer',
    'defineChannelIterator',
    'defineControl',
    'defineHandler',
    'defineReactorStep',
    'defineSubsystem',
    'forEachChannel',
    'forEachChannelGlobal',
    'forEachReactor',
    'getIoChannel',
    'getThread',
    'ioDeviceByName',
    'ioDeviceNames',
    'ioDeviceRegister',
    'ioDeviceUnregister',
    'parseCoreMask',
    'reactorCore',
    'reactorCount',
    'reactorIndex',
    'reactorThread',
    'realClock',
    'registerPoller',
    'send',
    'startApp',
    'trySend',
    'wakeReactor',
  ],
  '@storkit/reactor/module': [
    'LOOP_DEFAULTS',
    'MeshEndpoint',
    'MsgQueue',
    'RX_BATCH',
    'Reactor',
    'ReactorLoop',
    'RingConsumer',
    'RingProducer',
    'SLOT_BYTES',
    'cpumask',
    'createMeshMemory',
    'forEachChannelOn',
    'handlerByName',
    'handlerId',
    'localReactor',
    'localReactors',
    'localThreads',
    'lookupHandler',
    'reactorInfo',
    'recordSlots',
    'ringBytes',
    'setCurrentThread',
    'setTransport',
    'threadIoChannels',
    'threadPollers',
    'threadStats',
  ],
  '@storkit/reactor/testing': ['ManualClock', 'TestHarness', 'closeTestHarnesses', 'createTestHarness'],
};

describe('package exports', () => {
  for (const [entry, names] of Object.entries(SURFACE)) {
    it(`${entry} exports exactly its documented names`, async () => {
      const mod = (await import(entry)) as Record<string, unknown>;
      expect(Object.keys(mod).sort()).to.deep.equal([...names].sort());
    });
  }

  it('keeps internals unexported', async () => {
    try {
      await import('@storkit/reactor/dist/src/ring.js' as string);
      expect.fail('internal module was importable');
    } catch (e) {
      expect(e).to.have.property('code', 'ERR_PACKAGE_PATH_NOT_EXPORTED');
    }
  });

  it('codec namespace holds the codecs', async () => {
    const { codec } = await import('@storkit/reactor');
    expect(Object.keys(codec).sort()).to.deep.equal(
      ['bytes', 'float64', 'i32', 'json', 'none', 'struct', 'u32', 'utf8'].sort(),
    );
  });
});
