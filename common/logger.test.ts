import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';

describe('logger', () => {
  it('honours LOG_LEVEL', () => {
    const warn = createLogger(loadConfig({ LOG_LEVEL: 'warn' }), 'test');
    expect(warn.isLevelEnabled('warn')).toBe(true);
    expect(warn.isLevelEnabled('info')).toBe(false);
    expect(createLogger(loadConfig({}), 'test').isLevelEnabled('info')).toBe(true);
  });

  it('refuses an unknown level, naming the variable', () => {
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(ConfigError);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/^LOG_LEVEL="loud" is invalid/);
  });
});
