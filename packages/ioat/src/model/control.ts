/**
 * Control words IoatModel shares with its worker: stop, a wake-up word, hold (the engines run
 * nothing while set, as a stalled device), then one unplug word per channel.
 */
export const CTL_STOP = 0;
export const CTL_WAKE = 1;
export const CTL_HOLD = 2;
export const CTL_UNPLUG = 4;
