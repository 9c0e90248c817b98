// The package's public surface: exactly these entry points, each with what consumers use.

import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import { LatencyHistogram } from '../src/perf/index.js';

describe('nvme: package exports and tools', () => {
  it('exports the host API, the perf engine, the software PCIe controller, the nvme bdev module and the test kit (wire checks, SPDK peers), nothing else', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(Object.keys(pkg.exports)).to.deep.equal(['.', './perf', './pcie-model', './bdev', './testing']);
    const host = await import('@storkit/nvme');
    expect(Object.keys(host).sort()).to.deep.equal([
      'ConnectError',
      'HostQpairError',
      'NvmeController',
      'NvmeLinkError',
      'NvmeStatusError',
      'NvmeTcpProtocolError',
      'PcieQpair',
      'STATUS_ABORTED_SQ_DELETION',
      'STATUS_TRANSPORT_ERROR',
      'TcpHostQpair',
      'TransportIdError',
      'discover',
      'formatTransportId',
      'getTransport',
      'normalizePciAddress',
      'parseTransportId',
      'pcieTransport',
      'registerTransport',
    ]);
    const model = await import('@storkit/nvme/pcie-model');
    expect(Object.keys(model).sort()).to.deep.equal([
      'MODEL_BAR0_SIZE',
      'MODEL_DEVICE',
      'MODEL_VENDOR',
      'NvmeControllerModel',
      'NvmeModelInThread',
      'NvmeModelWorker',
    ]);
    const perf = await import('@storkit/nvme/perf');
    expect(Object.keys(perf).sort()).to.deep.equal(['LatencyHistogram', 'runPerf']);
    const testing = await import('@storkit/nvme/testing');
    expect(Object.keys(testing).sort()).to.deep.equal([
      'PEERS',
      'PROBLEMS',
      'badDigestSession',
      'decodeFor',
      'digestVerdicts',
      'explainFrame',
      'flaggedFrames',
      'freePort',
      'pduTypes',
      'requireTshark',
      'session',
      'spdkBin',
      'spdkTool',
      'startCapture',
      'startSpdkTgt',
      'tshark',
    ]);
  });

  it('latency histogram: percentiles within a bucket (~3%) of the exact ones', () => {
    const h = new LatencyHistogram();
    const xs: number[] = [];
    for (let i = 1; i <= 10000; i++) {
      const v = ((i * 7919) % 5000) + 0.5;
      xs.push(v);
      h.record(v);
    }
    xs.sort((a, b) => a - b);
    for (const p of [1, 50, 90, 99, 99.9]) {
      const exact = xs[Math.ceil((p / 100) * xs.length) - 1];
      expect(h.percentile(p)).to.be.within(exact, exact * 1.07);
    }
    expect(h.min).to.equal(0.5);
    expect(h.max).to.equal(4999.5);
    expect(h.mean).to.be.closeTo(xs.reduce((a, b) => a + b) / xs.length, 1e-6);
  });
});
